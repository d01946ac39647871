"""The reliability simulation (bench/reliability.py) at the size the issue names: 10,000+
deliveries, at least 20% duplicates, every crash point, 10% of port calls failing.

Not a timed test: it asserts what came out, not how fast."""

from __future__ import annotations

import pytest

from bench.reliability import simulate
from functions.service import crashpoints

pytestmark = pytest.mark.slow  # the 10,000-delivery simulation (about 20 s)


def test_ten_thousand_hostile_deliveries_start_each_run_once_and_lose_nothing() -> None:
    report = simulate(10_000, seed=7)
    assert report.deliveries >= 10_000
    assert report.duplicates >= 0.2 * report.deliveries
    assert all(report.crashes[point] > 0 for point in crashpoints.POINTS), report.crashes
    assert report.faults >= 0.09 * report.calls
    assert report.runs_created > 0.7 * report.events  # 80% of the events start runs
    assert (report.duplicate_runs, report.unaccounted, report.duplicate_results) == (0, 0, 0)
    assert report.results >= report.runs_created
