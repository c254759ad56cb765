"""Adapters that present real public data sets as a retailer's carts."""
