"""bench/round_trips.py runs against the emulators and prints its table (a smoke test: the
figures themselves are the bench's to print, not a test's to time)."""

from __future__ import annotations

import logging

import pytest

from bench import round_trips

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_the_round_trip_bench_prints_every_delivery(capsys: pytest.CaptureFixture[str]) -> None:
    round_trips.main([])
    printed = capsys.readouterr().out
    assert logging.root.manager.disable == logging.NOTSET, "the bench gave the suite its logs back"
    for kind in round_trips.KINDS:
        assert f"| {kind} |" in printed
    assert "other calls" not in printed  # every call the clients made is a kind the table counts
    assert "| status |" in printed
    assert "| runs (a page of" in printed
