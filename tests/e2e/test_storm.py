"""The storm at a smaller size (bench/storm.py: 2,000+ deliveries, 2 instances a target, kills):
many functions-framework instances one request at a time on the Firestore and Pub/Sub emulators,
a push relay redelivering, duplicating and reordering, the KFP fake with faults, SIGKILLs
mid-request, a scheduled reconciler. Every event is accounted for, no run or result twice,
nothing stuck."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from bench import wired
from bench.storm import storm

pytestmark = [pytest.mark.slow, pytest.mark.emulator]


def test_a_storm_on_two_instances_loses_nothing_and_runs_nothing_twice(
    firestore_emulator: str, pubsub_emulator: str, tmp_path: Path
) -> None:
    report = storm(tmp_path, wired(f"storm-{uuid.uuid4().hex[:8]}"), deliveries=2_000, instances=2)
    assert report.deliveries >= 2_000
    assert report.kills > 0, "no instance was killed mid-request"
    assert report.duplicates_sent > 0
    assert sum(report.redeliveries.values()) > 0
    assert report.runs_created_expected == report.runs_expected > 0
    assert (report.duplicate_runs, report.unaccounted, report.stuck, report.duplicate_results) == (0, 0, 0, 0)
    assert report.results >= report.runs_created
