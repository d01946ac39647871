"""bench/ledger_growth.py runs (small) and prints its table and verdict (a smoke test: the
figure is the bench's to print, not a test's to time)."""

from __future__ import annotations

import logging

import pytest

from bench import ledger_growth

pytestmark = pytest.mark.slow


def test_the_ledger_growth_bench_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    ledger_growth.main(["--runs", "1000", "--decisions", "10000", "--events", "50"])
    printed = capsys.readouterr().out
    assert logging.root.manager.disable == logging.NOTSET, "the bench gave the suite its logs back"
    assert "| empty |" in printed
    assert "large / empty =" in printed
