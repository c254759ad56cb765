"""Serving: the use cases behind the API (retailers, events, predictions, served models, stats),
the tenant cache and how it stays fresh, authentication, background work."""
