"""Retention decisions: which action, for which cart, when; the control groups that prove them."""
