"""Tests of privacy/."""
