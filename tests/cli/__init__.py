"""Tests of cli/, through click's runner."""
