"""microwsgi's benchmark suite (issue 6): run it with ``python -m benchmarks``."""
