"""Running it: the HTTP server, the Lambda entry point, the load test, the cost model, end-to-end
experiments."""
