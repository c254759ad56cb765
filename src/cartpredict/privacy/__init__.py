"""Privacy rules in one place: k-anonymity, retention limits and purge, no personal data."""
