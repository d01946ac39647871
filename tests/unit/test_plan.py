"""`routes plan`: the kept events through two route files, per route what is gained, lost and
changed, with examples; the ledger only read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from events.router import Router
from functions.service import intake
from functions.service.plan import Routes, plan
from functions.service.ports import Services
from functions.service.records import KeptEvent
from pipelines.catalog import load
from tests.support import call, message_event, storage_event

PIPELINES = """version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
  moving: {source: tests.support.echo_pipeline:%s}
routes:
"""
ALIKE = """
  - name: versioned
    when: {pubsub: {topic: closing}}
    run: {pipeline: moving}
  - name: ready
    when:
      join:
        key: "{tenant}"
        within: 1d
        parts:
          files: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"}}
          closed: {pubsub: {topic: closing}, key: "{data.tenant}"}
    run: {pipeline: echo}
"""  # in both files: the same pipeline name, compiled from another source in NEW
OLD = """
  - name: daily
    when: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: echo, params: {message: "{tenant}"}}
  - name: closed
    when: {pubsub: {topic: closing}}
    run: {pipeline: echo}
"""
NEW = """
  - name: daily
    when: {storage: {bucket: landing, object: "acme/{date}/_SUCCESS"}}
    run: {pipeline: echo, params: {message: "acme only"}}
  - name: closed
    when: {pubsub: {topic: closing}}
    run: {pipeline: echo, run_key: "{route}/{data.tenant}", params: {message: "{data.tenant}"}}
  - name: audit
    when: {storage: {bucket: landing}}
    run: {pipeline: echo}
"""


def routes(folder: Path, text: str) -> Routes:
    folder.mkdir()
    (folder / "routes.yaml").write_text(text)
    loaded = load(folder / "routes.yaml", folder / "packages")
    return Routes(Router(loaded.rules), loaded.catalog)


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Routes, Routes]:
    folder = tmp_path_factory.mktemp("plan")
    old = routes(folder / "old", PIPELINES % "echo_pipeline" + OLD + ALIKE)
    return old, routes(folder / "new", PIPELINES % "sleepy_pipeline" + NEW + ALIKE)


@pytest.fixture
def delivered(services: Services, sides: tuple[Routes, Routes]) -> Services:
    """Under OLD: two tenants' days landed, one closing message each, one object elsewhere."""
    old, _ = sides
    served = replace(services, router=old.router, catalog=old.catalog)
    for number, tenant in enumerate(("acme", "globex")):
        assert call(
            intake.handle, served, *storage_event("landing", f"{tenant}/d1/_SUCCESS", 1, f"s-{number}")
        )
        assert call(intake.handle, served, *message_event("closing", {"tenant": tenant}, f"m-{number}"))
    call(intake.handle, served, *storage_event("elsewhere", "x.csv", 1, "other"))
    return served


def test_each_route_says_what_it_gains_loses_and_changes_with_examples(
    delivered: Services, sides: tuple[Routes, Routes]
) -> None:
    found = plan(delivered.decisions.kept_since(0.0), *sides, 0.0, "schedules")
    assert (found.events, found.unreadable) == (5, 0)
    counts = {
        name: (route.old, route.new, route.gained, route.lost, route.changed)
        for name, route in found.routes.items()
    }
    assert counts == {
        "daily": (2, 1, 0, 1, 1),  # globex no longer matches; acme runs with another message
        "closed": (2, 2, 0, 0, 2),
        "versioned": (2, 2, 0, 0, 2),
        "ready": (4, 4, 0, 0, 0),
        "audit": (0, 2, 2, 0, 0),
    }
    (lost,) = found.routes["daily"].examples["lost"]
    assert lost["event_id"] == "s-1"
    assert lost["old"]["run_key"] == "daily/landing/globex/d1/_SUCCESS#1"  # type: ignore[index]
    closed = found.routes["closed"].examples["changed"][0]
    assert found.routes["daily"].examples["changed"][0]["fields"] == ["params.message"]
    assert closed["fields"] == ["params.message", "run_key"]
    assert closed["new"]["run_key"] == "closed/acme"  # type: ignore[index]
    assert found.routes["versioned"].examples["changed"][0]["fields"] == ["version"]
    assert found.differs
    assert found.as_json()["routes"][0]["route"] == "audit"  # type: ignore[index]


def test_the_same_routes_change_nothing_and_an_event_kept_without_data_is_counted_apart(
    delivered: Services, sides: tuple[Routes, Routes]
) -> None:
    old, _ = sides
    delivered.decisions.keep(KeptEvent("big", 1.0, {"id": "big", "type": "t"}, "", ""))  # over 900 kB
    found = plan(delivered.decisions.kept_since(0.0), old, old, 0.0, "schedules")
    assert (found.events, found.unreadable, found.differs) == (6, 1, False)
    assert all(not route.examples for route in found.routes.values())


def test_only_events_kept_since_the_start_are_read(delivered: Services, sides: tuple[Routes, Routes]) -> None:
    later = max(event.at for event in delivered.decisions.kept_since(0.0)) + 1
    assert plan(delivered.decisions.kept_since(later), *sides, later, "schedules").events == 0
