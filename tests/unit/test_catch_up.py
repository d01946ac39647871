"""schedule.catch_up (issue 17 item 3): reconcile starts the slots a stopped scheduler missed
within the horizon, each once; slots the live scheduler delivered are duplicates."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from events.eventarc import scheduler_tick
from events.router import Router
from events.routes import load_routes
from functions.service import intake, reconcile
from functions.service.ports import Services
from tests.conftest import Clock
from tests.support import call
from tests.support.fakes import RecordingBackend

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: hourly
    when: {schedule: {job: hourly-retrain, cron: "0 * * * *", catch_up: 1d}}
    run: {pipeline: echo}
  - name: no-catch-up
    when: {schedule: {job: other, cron: "0 * * * *"}}
    run: {pipeline: echo}
"""


@pytest.fixture
def scheduled(services: Services, clock: Clock) -> Services:
    clock.now = datetime(2026, 11, 30, 8, 30, tzinfo=UTC).timestamp()
    return replace(services, router=Router(load_routes(ROUTES).rules))


def tick(services: Services, job: str, slot: datetime) -> None:
    headers, data = scheduler_tick(job, slot + timedelta(seconds=2))
    assert call(intake.handle, services, headers, json.dumps(data).encode()).status == 200


def test_three_missed_slots_start_three_runs_once(scheduled: Services, backend: RecordingBackend) -> None:
    first = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    for hour in range(21):  # the scheduler ran until 05:00, then stopped
        tick(scheduled, "hourly-retrain", first + timedelta(hours=hour))
    assert len(backend.submitted) == 21
    report = reconcile.reconcile(scheduled)
    started = [s.run_key for s in backend.submitted[21:]]
    assert started == [
        "hourly/hourly-retrain@2026-11-30T06:00:00Z",
        "hourly/hourly-retrain@2026-11-30T07:00:00Z",
        "hourly/hourly-retrain@2026-11-30T08:00:00Z",
    ]
    assert report.done == 3
    reconcile.reconcile(scheduled)
    assert len(backend.submitted) == 24, "each slot once: the next pass starts nothing"
    assert all(s.route != "no-catch-up" for s in backend.submitted), "catch_up is off by default"


def test_a_slot_that_cannot_start_now_is_tried_again_next_pass(
    scheduled: Services, backend: RecordingBackend, clock: Clock
) -> None:
    from events.errors import TransientError

    for hour in range(24):
        tick(scheduled, "hourly-retrain", datetime(2026, 11, 29, 9, 0, tzinfo=UTC) + timedelta(hours=hour))
    clock.now += 2 * 3600  # 09:00 and 10:00 missed
    backend.fail_with = TransientError("backend unavailable")
    report = reconcile.reconcile(scheduled)
    assert [s["run_key"] for s in report.skipped] == ["hourly-retrain@2026-11-30T09:00:00+00:00"]
    reconcile.reconcile(scheduled)
    assert [s.run_key for s in backend.submitted[24:]] == [
        "hourly/hourly-retrain@2026-11-30T09:00:00Z",
        "hourly/hourly-retrain@2026-11-30T10:00:00Z",
    ]
