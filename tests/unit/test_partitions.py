"""Partitions (issue 36): a route names the partition each run covers; `kfp-trigger partitions`
shows each one's state — missing, waiting (on what), queued, running, succeeded, failed, stale —
and `backfill --reprocess failed|stale` runs exactly those again. On the memory ledger."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from events.router import Router
from functions.service import completion, intake, partitions
from functions.service.ledger import Ledger
from functions.service.ports import Services
from pipelines.backend import RunState
from pipelines.catalog import LoadedRoutes, load
from tests.conftest import Clock
from tests.support import call, message_event, storage_event
from tests.support.fakes import RecordingBackend

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: daily
    when: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: echo, run_key: "{route}/{tenant}/{date}"}
    partition: "{tenant}/{date}"
  - name: ready
    when:
      join:
        key: "{tenant}/{date}"
        within: 1d
        parts:
          closed: {pubsub: {topic: closing}, key: "{data.tenant}/{data.date}"}
          files: {storage: {bucket: ready-bucket, object: "{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: echo}
    partition: "{key}"
"""
TODAY = "2027-01-15"  # the test clock's day (1_800_000_000)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder = tmp_path_factory.mktemp("partitions")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


@pytest.fixture
def routed(services: Services, loaded: LoadedRoutes) -> Services:
    return replace(services, router=Router(loaded.rules), catalog=loaded.catalog)


def land(services: Services, tenant: str, date: str, generation: int = 1) -> None:
    event_id = f"{tenant}-{date}-{generation}"
    delivery = storage_event("landing", f"{tenant}/{date}/_SUCCESS", generation=generation, event_id=event_id)
    assert call(intake.handle, services, *delivery).status == 200


def shown(services: Services, route: str, days: int = 3) -> partitions.Partitions:
    ledger = cast(Ledger, services.store)
    return partitions.partitions(ledger, services.router.by_name[route], services.clock(), days)


def test_each_partition_shows_its_latest_runs_state_and_a_day_with_nothing_is_missing(
    routed: Services, backend: RecordingBackend, clock: Clock
) -> None:
    for tenant, date in (("acme", "2027-01-13"), ("acme", "2027-01-14"), ("globex", "2027-01-15")):
        land(routed, tenant, date)
    backend.states["fake-1"] = RunState.SUCCEEDED
    backend.states["fake-2"] = RunState.FAILED
    completion.reconcile(routed)
    land(routed, "acme", "2027-01-13", generation=2)  # newer data after its run: stale
    found = shown(routed, "daily")
    assert (found.rows, found.days) == (["acme", "globex"], ["2027-01-13", "2027-01-14", TODAY])
    assert [[found.cell(row, day).state for day in found.days] for row in found.rows] == [
        ["stale", "failed", "missing"],
        ["missing", "missing", "running"],
    ]
    stale = found.cell("acme", "2027-01-13")
    assert stale.detail == "landing/acme/2027-01-13/_SUCCESS#2 arrived after its run (succeeded)"
    assert found.as_json()["counts"] == {"failed": 1, "missing": 3, "running": 1, "stale": 1}


def test_an_open_join_window_is_waiting_on_its_missing_parts(routed: Services) -> None:
    closing = message_event("closing", {"tenant": "acme", "date": TODAY}, "c-1")
    assert call(intake.handle, routed, *closing).status == 200
    found = shown(routed, "ready", days=1)
    cell = found.cell("acme", TODAY)
    assert cell.state == "waiting"
    assert cell.detail.startswith(f"join 'acme/{TODAY}': waiting on `files`")


def test_reprocess_runs_exactly_the_failed_partitions_again_dry_run_first(
    routed: Services, backend: RecordingBackend
) -> None:
    for date in ("2027-01-13", "2027-01-14", TODAY):
        land(routed, "acme", date)
    backend.states["fake-1"] = backend.states["fake-3"] = RunState.FAILED
    backend.states["fake-2"] = RunState.SUCCEEDED
    completion.reconcile(routed)
    rule, now = routed.router.by_name["daily"], routed.clock()
    dry = partitions.reprocess(routed, rule, "failed", now, 3, dry_run=True)
    assert [d["what"] for d in dry.decisions] == ["acme/2027-01-13", f"acme/{TODAY}"]
    assert len(backend.submitted) == 3, "a dry run starts nothing"
    real = partitions.reprocess(routed, rule, "failed", now, 3)
    assert [d["run_key"] for d in real.decisions] == [
        "daily/acme/2027-01-13~rerun-1",
        f"daily/acme/{TODAY}~rerun-1",
    ]
    assert dict(real.outcomes) == {"run": 2}
    after = shown(routed, "daily")
    assert [after.cell("acme", day).state for day in after.days] == ["running", "succeeded", "running"]
    assert partitions.reprocess(routed, rule, "failed", now, 3).candidates == 0, "nothing failed now"


def test_the_status_page_draws_the_matrix_and_lists_what_needs_a_look(
    routed: Services, backend: RecordingBackend
) -> None:
    from functions.statuspage import render

    land(routed, "acme", TODAY)
    backend.states["fake-1"] = RunState.FAILED
    completion.reconcile(routed)
    page = render(routed, "/partitions", {"route": "daily", "days": "2"})
    assert page.status == 200
    assert f'title="acme/{TODAY}: failed' in page.html
    assert f"daily/acme/{TODAY}" in page.html
    assert render(routed, "/partitions", {"route": "nope"}).status == 404
