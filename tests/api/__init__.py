"""Tests of api/, through the HTTP interface."""
