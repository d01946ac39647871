"""bench/trigger_path.py at a small size, so the benchmark cannot rot: the floor row, the path
row against it, the routing and hostile-pattern tables all print. Nothing here is timed."""

from __future__ import annotations

import pytest

from bench import trigger_path

pytestmark = pytest.mark.slow  # 10,000 routes are loaded for the routing table


def test_the_trigger_path_bench_prints_its_tables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(trigger_path, "REPEATS", 1)
    monkeypatch.setattr(trigger_path, "EVENTS", 200)
    trigger_path.main()
    printed = capsys.readouterr().out
    assert "| floor: a bare claim of the same runs (one insert and commit) |" in printed
    assert "| 200 deliveries: envelope + decode + route + claim |" in printed
    assert "| 200 deliveries: … + claim + mark submitted (two commits) |" in printed
    assert "| 10,000 |" in printed
