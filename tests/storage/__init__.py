"""Tests of storage/: the contract every backend keeps, row-level security."""
