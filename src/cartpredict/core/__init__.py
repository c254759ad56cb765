"""Core: settings, errors, the clock, logging and the vocabulary of a cart; imports nothing of the
project."""
