"""Tests of monitoring/."""
