"""Benchmarks that print tables. Run them with `make bench` (or `python -m bench`)."""
