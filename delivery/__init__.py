"""Delivery: the router, the outbox, workers, rate limiting and one module per channel."""
