"""Benchmarks of hayhooks against a hand-written FastAPI baseline. Entry point: ``python -m bench.run``."""
