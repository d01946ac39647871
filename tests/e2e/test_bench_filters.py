"""bench/filters.py on small sizes, so the benchmark cannot rot: its routes load, its events are
refused by the last comparator (the bench asserts it) and its table prints. Nothing here is
timed; the figures are `make bench`'s."""

from __future__ import annotations

import pytest

from bench import filters


def test_the_filters_bench_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    filters.main(["--events", "3", "--sizes", "1,2"])
    printed = capsys.readouterr().out
    assert "| 1 KB |" in printed
    assert "| 2 KB |" in printed
    assert "largest µs per KB" in printed
