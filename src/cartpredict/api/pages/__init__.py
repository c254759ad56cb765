"""The marketing team's dashboard: server-rendered pages under ``/app/`` (``routes.py``), signed
in with an API key that may read (``signin.py``), every figure from the API's own services
(``figures.py``), charts as inline SVG (``charts.py``), no script and no other host."""

from cartpredict.api.pages.routes import router

__all__ = ["router"]
