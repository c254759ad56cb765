"""Promises of the whole system: real processes racing, faults, the README, the benchmark."""
