"""Monitoring: the prediction log, the daily rollup, what a retailer may see of it, drift,
metrics."""
