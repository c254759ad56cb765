"""The harness every test shares: factories, databases, real server processes, and feed
and stats helpers."""
