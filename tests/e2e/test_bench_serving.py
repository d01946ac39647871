"""bench/serving.py at a small size, so the benchmark cannot rot: both targets serve under
functions-framework, and a burst with duplicates creates exactly the expected runs. Nothing
here is timed; the figures are `make bench`'s."""

from __future__ import annotations

import pytest

from bench import serving

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses


def test_the_serving_benchmark_runs_and_its_burst_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "REPEATS", 1)
    monkeypatch.setattr(serving, "REQUESTS", 60)
    monkeypatch.setattr(serving, "BURST", 300)
    figures = serving.per_event(clients=1)
    assert set(figures) == {"noop", "two_commits", "read_two_commits", "handle_event"}
    assert all(len(values) == 1 for target in figures.values() for values in target.values())
    burst = serving.burst()
    assert burst["answered_2xx"] == 300
    assert (burst["runs"], burst["duplicate_runs"]) == (210, 0)
    assert 0 < burst["peak_rss_mb"] < 1024
