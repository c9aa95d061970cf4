"""Anchor-based intensity evaluator and the steering study."""
