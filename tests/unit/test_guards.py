"""The checks after routing, decided in pure code: plain events, routes and facts in, a plan out.
No ledger, no backend, no object store: `guards.decide` reads nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.decoders import decode
from events.envelope import parse_http
from events.errors import BadEvent
from events.eventarc import message_published, object_finalized
from events.model import Ignored, TriggerEvent
from events.router import Router
from events.signatures import sign
from functions.service import guards
from functions.service.batches import Batch, NotReady
from pipelines.catalog import LoadedRoutes, load

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: files
    when: {storage: {bucket: files}}
    run: {pipeline: echo}
    limits: {max_age: 1h}
  - name: batches
    when: {storage: {bucket: batches, object: "{batch}/_MANIFEST.json", batch: {manifest: true}}}
    run: {pipeline: echo}
  - name: windows
    when: {storage: {bucket: windows, object: "{day}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{day}"}
    limits: {coalesce: 10m}
  - name: product
    when: {pubsub: {topic: product, signature: {secret: PRODUCT_SECRET}}}
    run: {pipeline: echo}
"""
NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC).timestamp()
SECRET = "s3cret"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder: Path = tmp_path_factory.mktemp("guards")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


def event(headers: dict[str, str], data: dict[str, object]) -> TriggerEvent:
    decoded = decode(*parse_http(headers, json.dumps(data).encode()))
    assert not isinstance(decoded, Ignored)
    return decoded


def plan(loaded: LoadedRoutes, happened: TriggerEvent, **facts: object) -> guards.Plan:
    router = Router(loaded.rules)
    known = guards.Facts(now=NOW, secrets={"PRODUCT_SECRET": SECRET}, **facts)
    return guards.decide(happened, router.route(happened), router, loaded.catalog, known)


def stored(bucket: str, name: str, generation: int = 5, age: float = 60.0) -> TriggerEvent:
    updated = datetime.fromtimestamp(NOW - age, UTC)
    return event(*object_finalized(bucket, name, generation=generation, size=10, updated=updated))


def test_a_fresh_object_is_launched(loaded: LoadedRoutes) -> None:
    (step,) = plan(loaded, stored("files", "a.csv"), generation_mark=5)
    assert isinstance(step, guards.Launch)
    assert (step.run.run_key, step.run.pipeline) == ("files/files/a.csv#5", "echo")


def test_an_older_generation_than_one_seen_is_skipped(loaded: LoadedRoutes) -> None:
    (step,) = plan(loaded, stored("files", "a.csv", generation=5), generation_mark=7)
    assert step == guards.Skip("files", "generation 5 is older than generation 7, seen already")


def test_an_event_older_than_max_age_is_skipped_with_its_run_key(loaded: LoadedRoutes) -> None:
    (step,) = plan(loaded, stored("files", "a.csv", age=7200), generation_mark=5)
    assert isinstance(step, guards.Skip)
    assert (step.reason, step.run_key) == (
        "event is 7200 s old, older than max_age 3600 s",
        "files/files/a.csv#5",
    )


def test_a_batch_runs_only_when_ready_and_a_bad_manifest_is_skipped(loaded: LoadedRoutes) -> None:
    manifest = stored("batches", "b7/_MANIFEST.json")
    (waiting,) = plan(loaded, manifest, batch=NotReady("1 of 2 objects missing"))
    assert isinstance(waiting, guards.Retry)
    assert waiting.reason == "batch not ready: 1 of 2 objects missing"
    (bad,) = plan(loaded, manifest, batch=BadEvent("not JSON"))
    assert bad == guards.Skip("batches", "bad manifest: not JSON", "batches/batches/b7/_MANIFEST.json#5")
    (ready,) = plan(loaded, manifest, batch=Batch(("gs://batches/b7/a.csv",), 10))
    assert isinstance(ready, guards.Launch)


def test_a_manifest_still_incomplete_after_max_wait_is_skipped_for_good(loaded: LoadedRoutes) -> None:
    """Issue 14 item 4: it was answered 503 until the platform dropped it, with no final record."""
    missing = NotReady("missing or empty: 1 of 2 objects: 'b7/part-1.csv'")
    six_hours = 6 * 3600
    (waiting,) = plan(loaded, stored("batches", "b7/_MANIFEST.json", age=six_hours - 60), batch=missing)
    assert isinstance(waiting, guards.Retry), "within the default batch.max_wait (6 h)"
    (final,) = plan(loaded, stored("batches", "b7/_MANIFEST.json", age=six_hours + 60), batch=missing)
    assert isinstance(final, guards.Skip)
    assert final.reason == (
        "incomplete batch after 21660 s (batch.max_wait 21600 s): "
        "missing or empty: 1 of 2 objects: 'b7/part-1.csv'"
    )
    assert final.run_key == "batches/batches/b7/_MANIFEST.json#5"


def test_a_coalescing_route_joins_the_window(loaded: LoadedRoutes) -> None:
    (step,) = plan(loaded, stored("windows", "2027-01-15/part-1.csv"))
    assert isinstance(step, guards.Join)
    assert (step.run.run_key, step.window) == ("windows/2027-01-15", 600.0)


def product_message(secret: str, signed_at: float) -> TriggerEvent:
    data, topic = b'{"event_id": "e-1"}', "projects/p/topics/product"
    attributes = {"timestamp": str(int(signed_at))}
    attributes["signature"] = sign(secret, int(signed_at), topic, attributes, data)
    return event(*message_published(topic, data, attributes))


def test_a_signed_message_launches_and_a_forged_one_refuses_the_event(loaded: LoadedRoutes) -> None:
    (step,) = plan(loaded, product_message(SECRET, NOW - 5))
    assert isinstance(step, guards.Launch)
    assert plan(loaded, product_message("guess", NOW - 5)) == guards.Refuse(
        "signature: the signature does not match"
    )
    refused = plan(loaded, product_message(SECRET, NOW - 3600))
    assert isinstance(refused, guards.Refuse)
    assert "replay" in refused.reason
