"""Freshness of outcomes per key (issue 37), on a frozen clock: each key without a run that
succeeded by `succeeded_by` is one alert naming its cause — no data arrived, a join waiting on
a part, held by a limit or the pause, the run failed, still running — with the `explain`
command; 50 keys with one missing make one alert; a route first seen today is never late for
yesterday."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from events.router import Router
from events.routes import load_routes
from functions.service import intake, limits, reconcile
from functions.service.ports import Services
from pipelines.backend import RunState
from tests.conftest import Clock
from tests.support import call, storage_event
from tests.support.fakes import RecordingBackend, RecordingSink, alerts_of

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: retrain
    when: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: echo, run_key: "{route}/{tenant}/{date}"}
    expect: {succeeded_by: "07:00", per: "{tenant}"}
  - name: ready
    when:
      join:
        key: "{tenant}"
        within: 2d
        parts:
          files: {storage: {bucket: ready-files, object: "{tenant}/_SUCCESS"}}
          closed: {pubsub: {topic: closing}, key: "{data.tenant}"}
    run: {pipeline: echo}
    expect: {succeeded_by: "07:00", per: "{key}"}
"""
WINDOW_END = "2026-12-02T07:00:00.000Z"


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.fixture
def watched(services: Services) -> Services:
    return replace(services, router=Router(load_routes(ROUTES).rules), alerts=(RecordingSink(),))


def land(services: Services, tenant: str, day: int) -> None:
    name = f"{tenant}/2026-12-{day:02}/_SUCCESS"
    assert (
        call(intake.handle, services, *storage_event("landing", name, event_id=f"{tenant}-{day}")).status
        == 200
    )


def end_runs(
    services: Services, backend: RecordingBackend, clock: Clock, when: float, **states: RunState
) -> None:
    """The runs of these tenants end in these states at `when` (a reconcile pass reads them)."""
    for run in services.store.runs(route="retrain"):
        tenant = run.run_key.split("/")[1]
        if tenant in states and run.run_id is not None and run.state is RunState.SUBMITTED:
            backend.states[run.run_id] = states[tenant]
    clock.now = when
    reconcile.reconcile(services)


def test_each_late_key_is_one_alert_naming_its_cause(
    watched: Services, backend: RecordingBackend, clock: Clock
) -> None:
    clock.now = at(1, 2)
    land(watched, "quiet", 1)  # ran in the window before: nothing comes in the judged one
    end_runs(watched, backend, clock, at(1, 3), quiet=RunState.SUCCEEDED)  # the route is first seen
    clock.now = at(1, 9)
    for tenant in ("ok", "failed", "running"):
        land(watched, tenant, 1)
    call(intake.handle, watched, *storage_event("ready-files", "acme/_SUCCESS", event_id="part-1"))
    end_runs(watched, backend, clock, at(1, 12), ok=RunState.SUCCEEDED, failed=RunState.FAILED)
    watched.quotas.set_flag(limits.PAUSED, True)
    clock.now = at(1, 13)
    land(watched, "held", 1)
    clock.now = at(2, 7, 30)
    reconcile.reconcile(watched)
    reconcile.reconcile(watched)  # judged once
    late = {str(a["subject"]): a for a in alerts_of(watched) if a["kind"] == "freshness.late"}
    assert sorted(late) == [
        f"ready/acme@{WINDOW_END}",
        f"retrain/failed@{WINDOW_END}",
        f"retrain/held@{WINDOW_END}",
        f"retrain/quiet@{WINDOW_END}",
        f"retrain/running@{WINDOW_END}",
    ]
    causes = {subject.split("@")[0]: str(a["summary"]) for subject, a in late.items()}
    assert causes["ready/acme"].startswith("key 'acme': a join 'acme': waiting on `closed`")
    assert causes["retrain/failed"].startswith("key 'failed': its run retrain/failed/2026-12-01 failed: ")
    assert (
        causes["retrain/held"]
        == "key 'held': its run retrain/held/2026-12-01 is held: " + limits.PAUSED_REASON
    )
    assert causes["retrain/quiet"].startswith(
        "key 'quiet': no data arrived between 2026-12-01T07:00:00.000Z and 2026-12-02T07:00:00.000Z"
    )
    assert causes["retrain/running"].startswith(
        "key 'running': its run retrain/running/2026-12-01 is still running"
    )
    assert late[f"retrain/failed@{WINDOW_END}"]["explain"] == "kfp-trigger explain retrain/failed/2026-12-01"
    assert late[f"ready/acme@{WINDOW_END}"]["explain"] == "kfp-trigger explain acme"
    assert (
        late[f"retrain/quiet@{WINDOW_END}"]["explain"]
        == f"kfp-trigger explain freshness/retrain/quiet@{WINDOW_END}"
    )
    (decision,) = watched.decisions.trail(f"freshness/retrain/quiet@{WINDOW_END}")
    assert decision.reason == causes["retrain/quiet"]


def test_fifty_keys_with_one_missing_make_one_alert(
    watched: Services, backend: RecordingBackend, clock: Clock
) -> None:
    tenants = [f"t{number:02}" for number in range(50)]
    clock.now = at(1, 1)
    for tenant in tenants:
        land(watched, tenant, 1)
    end_runs(watched, backend, clock, at(1, 2), **dict.fromkeys(tenants, RunState.SUCCEEDED))
    clock.now = at(1, 9)
    for tenant in tenants[:-1]:
        land(watched, tenant, 2)
    end_runs(watched, backend, clock, at(1, 10), **dict.fromkeys(tenants, RunState.SUCCEEDED))
    clock.now = at(2, 8)
    reconcile.reconcile(watched)
    (late,) = alerts_of(watched)
    assert late["subject"] == f"retrain/t49@{WINDOW_END}"
    assert str(late["summary"]).startswith("key 't49': no data arrived")


def test_a_route_first_seen_today_is_never_late_for_yesterday(
    watched: Services, backend: RecordingBackend, clock: Clock
) -> None:
    clock.now = at(1, 9)
    land(watched, "failed", 1)  # a run that fails, before any pass saw the route
    for run in watched.store.runs(route="retrain"):
        backend.states[str(run.run_id)] = RunState.FAILED
    clock.now = at(2, 8)  # the first pass: the window that ended at 07:00 is not judged
    reconcile.reconcile(watched)
    assert [a["kind"] for a in alerts_of(watched)] == ["run.failed"]  # the run's own alert only
    clock.now = at(3, 8)  # the next window is: the key had no success in it
    reconcile.reconcile(watched)
    assert [a["subject"] for a in alerts_of(watched) if a["kind"] == "freshness.late"] == [
        "retrain/failed@2026-12-03T07:00:00.000Z"
    ]
