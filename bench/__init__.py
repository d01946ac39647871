"""Benchmarks that print tables. Run them with `make bench` (or `python -m bench`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(level: int = logging.ERROR) -> Iterator[None]:
    """Silence log lines up to `level` for the block only: a bench expects thousands of
    warnings, and its smoke test runs it inside the test suite, whose later tests read logs."""
    logging.disable(level)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
