"""The HTTP layer: thin routes over the service."""
