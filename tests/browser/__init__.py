"""Tests in a real browser: the pages the service serves, as a person sees them."""
