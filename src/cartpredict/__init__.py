"""cartpredict: will this cart be purchased or abandoned in the next 24 hours?"""

__version__ = "0.1.0"
