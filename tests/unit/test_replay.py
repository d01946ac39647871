"""`kfp-trigger replay` (issue 17 item 2): a quarantined event replayed after routes.yaml is
fixed runs once; replayed again, it is a duplicate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from events.errors import PermanentError
from events.router import Router
from events.routes import load_routes
from functions.service import intake, replay
from functions.service.ports import Services
from tests.support import call, storage_event
from tests.support.fakes import RecordingBackend

FIXED = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: new-bucket
    when: {storage: {bucket: forgotten-bucket}}
    run: {pipeline: echo}
"""


def test_a_quarantined_event_runs_once_after_the_fix_and_is_a_duplicate_after(
    services: Services, backend: RecordingBackend
) -> None:
    answer = call(intake.handle, services, *storage_event("forgotten-bucket", "data.csv", event_id="lost-1"))
    assert answer.body["outcome"] == "quarantined"
    assert replay.quarantined(services, 0.0) == ["lost-1"]
    assert replay.quarantined(services, 0.0, reason="no route listens") == ["lost-1"]
    assert replay.quarantined(services, 0.0, reason="signature") == []

    fixed = replace(services, router=Router(load_routes(FIXED).rules))
    first = replay.replay(fixed, "lost-1")
    assert first["was"] == "no route listens to storage 'forgotten-bucket'"
    (decision,) = first["decisions"]  # type: ignore[misc]
    assert decision["outcome"] == "run"
    assert [s.run_key for s in backend.submitted] == ["new-bucket/forgotten-bucket/data.csv#1"]
    again = replay.replay(fixed, "lost-1")
    assert again["decisions"][0]["outcome"] == "duplicate"  # type: ignore[index]
    assert len(backend.submitted) == 1
    assert replay.quarantined(fixed, 0.0) == [], "it is routed now"


def test_an_event_never_delivered_cannot_be_replayed(services: Services) -> None:
    with pytest.raises(PermanentError, match="not kept"):
        replay.replay(services, "never-seen")
