"""Freshness and quarantine bursts (issue 17 items 4 and 5), on a fake clock: one alert per
missed window, none when data arrived; one per burst."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from events.router import Router
from events.routes import load_routes
from events.schema_limits import Expect
from functions.service import arrivals, intake, reconcile
from functions.service.ports import Services
from tests.conftest import Clock
from tests.support import call, storage_event
from tests.support.fakes import RecordingSink, alerts_of

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: daily-export
    when: {storage: {bucket: exports, object: "{day}/export.csv"}}
    run: {pipeline: echo}
    expect: {every: 1d, by: "06:00", timezone: Europe/Berlin}
"""


def at(day: int, hour: int, minute: int = 0) -> float:
    """A moment in December 2026, in UTC (Berlin is UTC+1: its 06:00 is 05:00 here)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.fixture
def watched(services: Services) -> Services:
    return replace(services, router=Router(load_routes(ROUTES).rules), alerts=(RecordingSink(),))


@pytest.mark.parametrize(
    ("now", "window"),
    [
        (at(2, 5, 30), (at(1, 5), at(2, 5))),  # 06:30 Berlin: the window that ended at 06:00
        (at(2, 4, 30), (at(1, 5) - 86400, at(1, 5))),  # 05:30 Berlin: the one that ended yesterday
    ],
)
def test_the_last_window_ends_at_by_in_its_time_zone(now: float, window: tuple[float, float]) -> None:
    expect = Expect(every=86400.0, by="06:00", timezone="Europe/Berlin")
    assert arrivals.last_window(expect, now) == window


def test_one_alert_per_missed_window_none_when_data_arrived(watched: Services, clock: Clock) -> None:
    clock.now = at(1, 9)  # data for December 1st arrives at 10:00 Berlin
    call(intake.handle, watched, *storage_event("exports", "2026-12-01/export.csv", event_id="d1"))
    clock.now = at(2, 6)  # after 06:00 on the 2nd: the window had its data
    reconcile.reconcile(watched)
    assert alerts_of(watched) == []
    clock.now = at(3, 6)  # nothing came for the window ending on the 3rd
    reconcile.reconcile(watched)
    reconcile.reconcile(watched)
    (missed,) = alerts_of(watched)
    assert missed["kind"] == "freshness.missed"
    assert missed["subject"] == "daily-export@2026-12-03T05:00:00.000Z"
    assert missed["explain"] == "kfp-trigger explain freshness/daily-export@2026-12-03T05:00:00.000Z"
    (decision,) = watched.decisions.trail("freshness/daily-export@2026-12-03T05:00:00.000Z")
    assert decision.reason.startswith("expected data absent: no event for route daily-export between")
    clock.now = at(4, 6)  # nor for the next one: a second alert, for that window
    reconcile.reconcile(watched)
    assert [a["subject"] for a in alerts_of(watched)] == [
        "daily-export@2026-12-03T05:00:00.000Z",
        "daily-export@2026-12-04T05:00:00.000Z",
    ]


def test_a_burst_raises_the_seen_mark_once_a_window(watched: Services, clock: Clock) -> None:
    """One write per window, not per event: the mark is a single document every instance writes
    (the storm bench's hot-document table counts it), and a window needs only one arrival."""
    seen = arrivals.SEEN + "daily-export"
    for minute in range(50):  # 50 generations over 50 minutes, in the window ending 06:00 Berlin on the 2nd
        clock.now = at(1, 9, minute)
        call(
            intake.handle,
            watched,
            *storage_event("exports", "2026-12-01/export.csv", generation=minute + 1, event_id=f"b{minute}"),
        )
        assert watched.quotas.mark(seen) == int(at(1, 9)), "raised by the window's first event only"
    clock.now = at(2, 5, 1)  # the next window: its first event raises the mark again
    call(intake.handle, watched, *storage_event("exports", "2026-12-02/export.csv", event_id="next"))
    assert watched.quotas.mark(seen) == int(at(2, 5, 1))
    clock.now = at(3, 6)
    reconcile.reconcile(watched)
    assert alerts_of(watched) == [], "both windows had their data"


def test_a_burst_of_quarantined_events_is_one_alert(watched: Services) -> None:
    for number in range(watched.settings.quarantine_burst):
        headers, body = storage_event("nobody-listens", f"x-{number}.csv", event_id=f"bad-{number}")
        call(intake.handle, watched, headers, body)
    reconcile.reconcile(watched)
    reconcile.reconcile(watched)
    (burst,) = [alert for alert in alerts_of(watched) if alert["kind"] == "quarantine.burst"]
    assert burst["summary"] == "10 events quarantined since the last check (10 in all)"
    call(intake.handle, watched, *storage_event("nobody-listens", "one-more.csv", event_id="bad-x"))
    reconcile.reconcile(watched)
    assert [a for a in alerts_of(watched) if a["kind"] == "quarantine.burst"] == [burst], (
        "one more is no burst"
    )
