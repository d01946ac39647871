"""Settle windows (`limits.settle`): one run per run key once its items stop arriving, at
`max_wait` however busy, or at `max_items` — objects and Pub/Sub messages, on a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from events.router import Router
from functions.service import completion, intake, preview
from functions.service.ports import Services
from pipelines.catalog import LoadedRoutes, load
from tests.conftest import Clock
from tests.support import Reply, call, message_event, storage_event
from tests.support.fakes import RecordingBackend

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: landed
    when: {storage: {bucket: landing, object: "{survey}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{survey}"}
    limits: {settle: {quiet: 2m, max_wait: 10m, max_items: 50}}
  - name: closed
    when: {pubsub: {topic: product-events}}
    run: {pipeline: echo, run_key: "{route}/{data.survey_id}"}
    limits: {settle: {quiet: 1m, max_items: 3}}
"""
MINUTE_BOUNDARY = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a whole minute (and hour) since the epoch


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    folder = tmp_path_factory.mktemp("settle")
    (folder / "routes.yaml").write_text(ROUTES)
    return load(folder / "routes.yaml", folder / "packages")


@pytest.fixture
def settling(services: Services, loaded: LoadedRoutes, backend: RecordingBackend) -> Services:
    return replace(services, router=Router(loaded.rules), catalog=loaded.catalog)


def deliver(services: Services, headers: dict[str, str], body: bytes) -> Reply:
    answer = call(intake.handle, services, headers, body)
    assert answer.status == 200, answer.body
    return answer


def test_ten_objects_thirty_seconds_apart_across_a_minute_boundary_make_one_run(
    settling: Services, backend: RecordingBackend, clock: Clock
) -> None:
    clock.now = MINUTE_BOUNDARY - 150  # the burst crosses 08:00:00
    for number in range(10):
        answer = deliver(settling, *storage_event("landing", f"s-1/part-{number}.csv", event_id=f"e{number}"))
        (decision,) = answer.body["decisions"]
        assert decision["outcome"] == "queued"
        completion.reconcile(settling)  # a pass between two items starts nothing
        assert backend.submitted == [], f"started before the items stopped (item {number})"
        clock.now += 30
    clock.now += 90  # 2 minutes after the last item
    completion.reconcile(settling)
    (run,) = backend.submitted
    assert run.run_key == "landed/s-1~settle-1"
    assert run.params["batch_objects"] == [f"gs://landing/s-1/part-{number}.csv" for number in range(10)]


def test_a_steady_stream_starts_at_max_wait_and_goes_on_in_the_next_batch(
    settling: Services, backend: RecordingBackend, clock: Clock
) -> None:
    opened = clock.now
    for number in range(15):  # one a minute: never 2 minutes quiet
        deliver(settling, *storage_event("landing", f"s-2/part-{number:02}.csv", event_id=f"e{number}"))
        completion.reconcile(settling)
        clock.now += 60
    first, *rest = backend.submitted
    assert first.run_key == "landed/s-2~settle-1"
    assert len(first.params["batch_objects"]) == 11, "items 0..10 arrived before max_wait (10 min)"
    assert rest == [], "the next batch settles on"
    (queued,) = settling.queue.queued(clock.now + 120)
    assert queued.run_key == "landed/s-2~settle-2"
    record = settling.store.get("landed/s-2~settle-1")
    assert record is not None
    assert record.submitted_at == opened + 600, "the pass at max_wait started it"


def test_messages_settle_too_and_a_full_batch_starts_on_the_next_pass(
    settling: Services, backend: RecordingBackend, clock: Clock
) -> None:
    for number in range(4):
        deliver(settling, *message_event("product-events", {"survey_id": "s9", "n": number}, f"m-{number}"))
    completion.reconcile(settling)
    (run,) = backend.submitted
    assert run.run_key == "closed/s9~settle-1"
    assert run.params["batch_objects"] == [
        f"projects/local/topics/product-events#m-{number}" for number in range(3)
    ], "max_items 3: the fourth is in the next batch"
    clock.now += 60
    completion.reconcile(settling)
    assert [run.run_key for run in backend.submitted][1:] == ["closed/s9~settle-2"]


def test_a_redelivery_is_answered_by_the_batch_that_holds_it_and_the_trail_says_until_when(
    settling: Services, clock: Clock
) -> None:
    event = storage_event("landing", "s-3/a.csv", event_id="a")
    deliver(settling, *event)
    clock.now += 30
    (decision,) = deliver(settling, *event).body["decisions"]
    assert (decision["outcome"], decision["batch"]) == ("duplicate", "landed/s-3~settle-1")
    joined, again = settling.decisions.trail("a")
    assert joined.reason == (
        "joined batch landed/s-3~settle-1: settling until 2027-01-15T08:02:00.000Z: 1 item(s) since "
        "2027-01-15T08:00:00.000Z"
    )
    assert again.reason == "already in batch landed/s-3~settle-1"


def test_simulate_says_which_batch_and_until_when(settling: Services, clock: Clock) -> None:
    from events.decoders import decode
    from events.envelope import parse_http
    from events.model import TriggerEvent

    deliver(settling, *storage_event("landing", "s-4/a.csv", event_id="a"))
    clock.now += 45
    headers, body = storage_event("landing", "s-4/b.csv", event_id="b")
    event = decode(*parse_http(headers, body), settling.settings.schedules_topic)
    assert isinstance(event, TriggerEvent)
    ledger = settling.store
    reader = preview.Reader(clock.now, ledger=ledger)  # type: ignore[arg-type]
    found = preview.preview(event, settling.router.route(event), settling.router, settling.catalog, reader)
    (decision,) = found.decisions
    assert decision["verdict"] == "join"
    assert decision["reason"] == (
        "joins batch landed/s-4~settle-1: settling until 2027-01-15T08:02:45.000Z: 2 item(s) since "
        "2027-01-15T08:00:00.000Z, unless more items arrive"
    )
