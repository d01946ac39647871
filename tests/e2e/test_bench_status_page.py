"""bench/status_page.py runs (small), each page showing what it must, and prints its table."""

from __future__ import annotations

import re

import pytest

from bench import status_page


def test_the_status_page_bench_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    status_page.main(["--runs", "2000", "--decisions", "20000", "--repeat", "2"])
    printed = capsys.readouterr().out
    assert "| overview `/` |" in printed
    assert re.search(r"overview median [0-9.]+ ms: (within|OVER) the 200 ms bound", printed)  # untimed:
    # whether it is within is the bench's to say (it measures, with the machine as it is)
