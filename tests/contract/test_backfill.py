"""`kfp-trigger backfill` (issue 17 item 1): what a route missed, through the normal intake —
against the GCS emulator (real generations and update times) and for cron slots."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from events.errors import PermanentError
from events.eventarc import object_finalized
from events.router import Router
from events.routes import load_routes
from functions.adapters.objects import GcsObjectStore
from functions.service import backfill, intake, preview
from functions.service.ports import Services
from tests.conftest import PROJECT
from tests.support import call
from tests.support.fakes import RecordingBackend

ROUTES = """
version: 1
pipelines:
  echo: {{source: tests.support.echo_pipeline:echo_pipeline}}
routes:
  - name: landed
    when: {{storage: {{bucket: {bucket}, object: "responses/{{tenant}}/{{file}}"}}}}
    run: {{pipeline: echo, params: {{message: "{{tenant}}"}}}}
  - name: other-route-on-the-bucket
    when: {{storage: {{bucket: {bucket}}}}}
    run: {{pipeline: echo}}
  - name: nightly
    when: {{schedule: {{job: nightly, cron: "0 2 * * *"}}}}
    run: {{pipeline: echo}}
  - name: product
    when: {{pubsub: {{topic: product-events}}}}
    run: {{pipeline: echo}}
  - name: survey-ready
    when:
      join:
        key: "{{survey}}"
        within: 1h
        parts:
          closed: {{pubsub: {{topic: survey-events}}, key: "{{data.survey}}"}}
          files: {{storage: {{bucket: {bucket}, object: "surveys/{{survey}}/_SUCCESS"}}}}
    run: {{pipeline: echo}}
"""


@pytest.fixture
def bucket(storage_emulator: str):
    from google.cloud.storage import Client

    return Client(project=PROJECT).create_bucket(f"kfp-trigger-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def routed(services: Services, bucket) -> Services:
    config = load_routes(ROUTES.format(bucket=bucket.name))
    return replace(services, router=Router(config.rules), objects=GcsObjectStore())


def test_fifty_objects_ten_already_run_backfill_starts_forty_once(
    routed: Services, backend: RecordingBackend, bucket
) -> None:
    for number in range(50):
        bucket.blob(f"responses/t{number % 3}/part-{number:02}.csv").upload_from_string(f"{number}\n")
    bucket.blob("elsewhere/not-matched.csv").upload_from_string("x\n")
    blobs = {blob.name: blob for blob in bucket.list_blobs(prefix="responses/")}
    live = replace(routed, router=Router((routed.router.by_name["landed"],)))
    for name in sorted(blobs)[:10]:  # the live trigger delivered these
        headers, data = object_finalized(bucket.name, name, generation=blobs[name].generation, size=2)
        call(intake.handle, live, headers, json.dumps(data).encode())
    assert len(backend.submitted) == 10
    rule = backfill.backfillable(routed, "landed")
    since, until = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1)

    reader = preview.Reader(routed.clock(), ledger=routed.store)  # type: ignore[arg-type]
    dry = backfill.backfill(routed, rule, since, until, dry_run=reader)
    assert (dry.candidates, dict(dry.outcomes)) == (50, {"run": 40, "duplicate": 10})
    assert len(backend.submitted) == 10, "a dry run starts nothing"

    real = backfill.backfill(routed, rule, since, until)
    assert dict(real.outcomes) == {"run": 40, "duplicate": 10}
    would_run = {d["what"] for d in dry.decisions if d["outcome"] == "run"}
    ran = {d["what"] for d in real.decisions if d["outcome"] == "run"}
    assert would_run == ran, "the dry run lists exactly what the real pass starts"
    assert len(backend.submitted) == 50
    assert {s.route for s in backend.submitted} == {"landed"}, "other routes on the bucket see nothing"

    again = backfill.backfill(routed, rule, since, until)
    assert dict(again.outcomes) == {"duplicate": 50}
    assert len(backend.submitted) == 50

    earlier = backfill.backfill(routed, rule, since - timedelta(days=2), since)
    assert earlier.candidates == 0, "only objects written in [since, until)"


def test_missed_cron_slots_start_once_each(routed: Services, backend: RecordingBackend) -> None:
    rule = backfill.backfillable(routed, "nightly")
    since = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
    report = backfill.backfill(routed, rule, since, since + timedelta(days=3))
    assert [d["what"] for d in report.decisions] == [
        "nightly@2026-11-27T02:00:00+00:00",
        "nightly@2026-11-28T02:00:00+00:00",
        "nightly@2026-11-29T02:00:00+00:00",
    ]
    assert [s.run_key for s in backend.submitted] == [
        "nightly/nightly@2026-11-27T02:00:00Z",
        "nightly/nightly@2026-11-28T02:00:00Z",
        "nightly/nightly@2026-11-29T02:00:00Z",
    ], "the run keys the live ticks would have had"
    assert dict(backfill.backfill(routed, rule, since, since + timedelta(days=3)).outcomes) == {
        "duplicate": 3
    }


def test_a_route_whose_events_cannot_be_listed_is_refused(routed: Services) -> None:
    with pytest.raises(PermanentError, match="a Pub/Sub message or a BigQuery job cannot be listed"):
        backfill.backfillable(routed, "product")
    with pytest.raises(PermanentError, match="no route 'nope'"):
        backfill.backfillable(routed, "nope")


def test_a_join_routes_listable_parts_are_backfilled_and_complete_their_windows(
    routed: Services, backend: RecordingBackend, bucket
) -> None:
    """The upload's finalize events were lost; the product's messages arrived (or were replayed):
    a backfill of the join route sends its storage part, and each window completes once."""
    from tests.support import message_event

    for survey in ("s1", "s2"):
        bucket.blob(f"surveys/{survey}/_SUCCESS").upload_from_string("")
    call(intake.handle, routed, *message_event("survey-events", {"survey": "s1"}, "closed-s1"))
    rule = backfill.backfillable(routed, "survey-ready")
    assert backfill.unlisted_parts(rule) == ["closed"]
    since, until = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1)
    report = backfill.backfill(routed, rule, since, until)
    assert [d["outcome"] for d in report.decisions] == ["run", "queued"], "s2 waits for its message"
    assert [s.route for s in backend.submitted] == ["survey-ready"]
    assert dict(backfill.backfill(routed, rule, since, until).outcomes) == {"duplicate": 2}
