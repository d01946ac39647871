"""The reliability simulation (bench/reliability.py) at the size the issues name: 20,000+
deliveries, at least 20% duplicates, every crash point, 10% of port calls failing, coalescing,
settle, manifest, join and supersede routes, a route removed mid-flight, runs deleted on the engine.

Not a timed test: it asserts what came out, not how fast."""

from __future__ import annotations

import pytest

from bench.reliability import simulate
from functions.service import crashpoints

pytestmark = pytest.mark.slow  # the 20,000-delivery simulation (about 100 s)


def test_twenty_thousand_hostile_deliveries_start_each_run_once_lose_nothing_and_leave_nothing_stuck() -> (
    None
):
    report = simulate(20_000, seed=7)
    assert report.deliveries >= 20_000
    assert report.duplicates >= 0.2 * report.deliveries
    assert all(report.crashes[point] > 0 for point in crashpoints.POINTS), report.crashes
    assert report.faults >= 0.09 * report.calls
    assert report.runs_created > 0.5 * report.events  # runs of single objects, windows, manifests
    assert report.lost_on_engine > 0, "some status lookups fail for good"
    assert (report.duplicate_runs, report.unaccounted, report.stuck, report.duplicate_results) == (0, 0, 0, 0)
    assert report.results >= report.runs_created
    # joins and supersede (issue 16): windows both complete and expire, none is left open past
    # its window, runs are superseded, none is cancelled twice
    assert report.joins_complete > 0
    assert report.joins_expired > 0
    assert report.superseded > 0
    assert (report.joins_left_open, report.duplicate_cancels) == (0, 0)
    # settle windows (issue 36): batches of objects and of messages ran, each item in one of them
    assert report.settled_items > report.settle_batches > 0
    # join expressions (issue 36): a quorum join's late parts ran once each, none twice (above)
    assert report.late_runs > 0
