"""The services behind the targets, with a recording backend: ack, retry and exactly-once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from events.errors import PermanentError, TransientError
from functions.service import completion, intake
from functions.service.ports import Services
from functions.service.records import Outcome
from pipelines.backend import RunState
from tests.conftest import Clock
from tests.support import Reply, binary, call, completion_event, storage_event
from tests.support.fakes import RecordingBackend, RecordingSink

KEY = "some-bucket-folder/some-bucket/folder/a.csv#1"


def deliver(services: Services, headers: dict[str, str], body: bytes) -> Reply:
    return call(intake.handle, services, headers, body)


def notify(services: Services, run_key: str, state: str) -> Reply:
    return call(completion.handle, services, *completion_event(run_key, state))


def results(services: Services) -> list[dict[str, object]]:
    assert isinstance(services.results, RecordingSink)
    return [dict(r) for r in services.results.published]


def test_a_redelivered_event_starts_one_run(services: Services, backend: RecordingBackend) -> None:
    event = storage_event("some-bucket", "folder/a.csv")
    answers = [deliver(services, *event) for _ in range(5)]
    assert [a.status for a in answers] == [200] * 5
    assert len(backend.submitted) == 1
    submission = backend.submitted[0]
    assert (submission.run_key, submission.params) == (KEY, {"message": "a.csv"})
    outcomes = [d.outcome for d in services.decisions.trail(KEY)]
    assert outcomes == [Outcome.RUN] + [Outcome.DUPLICATE] * 4


def test_a_duplicate_during_a_live_claim_is_not_acknowledged(
    services: Services, backend: RecordingBackend
) -> None:
    from functions.service.records import NewRun

    services.store.claim(
        NewRun(KEY, "some-bucket-folder", "echo", "v", "local", {}, "other"), 1_800_000_000, 120
    )
    answer = deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    assert answer.status == 429
    assert backend.submitted == []


def test_a_transient_backend_failure_asks_for_a_retry_that_then_succeeds(
    services: Services, backend: RecordingBackend
) -> None:
    backend.fail_with = TransientError("cluster unavailable")
    event = storage_event("some-bucket", "folder/a.csv")
    assert deliver(services, *event).status == 503
    assert deliver(services, *event).status == 200, "the claim was released: no wait for the lease"
    assert len(backend.submitted) == 1


def test_a_lost_submit_response_is_adopted_not_resubmitted(
    services: Services, backend: RecordingBackend, clock: Clock
) -> None:
    backend.succeed_but_raise = TimeoutError("response lost")
    event = storage_event("some-bucket", "folder/a.csv")
    with pytest.raises(TimeoutError):  # ambiguous: the claim is kept, the HTTP layer answers 500
        deliver(services, *event)
    assert deliver(services, *event).status == 429, "the claim still protects the run key"
    clock.now += services.settings.claim_lease_seconds + 1
    assert deliver(services, *event).status == 200
    assert len(backend.submitted) == 1
    record = services.store.get(KEY)
    assert record is not None
    assert (record.state, record.run_id) == (RunState.SUBMITTED, "fake-1")


def test_a_permanent_backend_failure_is_a_failed_run_with_a_result(
    services: Services, backend: RecordingBackend
) -> None:
    backend.fail_with = PermanentError("pipeline rejected")
    event = storage_event("some-bucket", "folder/a.csv")
    assert deliver(services, *event).status == 200
    assert deliver(services, *event).status == 200
    (result,) = results(services)
    assert result["data"]["state"] == "FAILED"
    assert result["data"]["error"] == {"kind": "submit", "message": "pipeline rejected"}


def test_bad_and_unrouted_events_are_quarantined_and_acknowledged(services: Services) -> None:
    attributes = {
        "specversion": "1.0",
        "id": "q-1",
        "type": "google.cloud.storage.object.v1.finalized",
        "source": "//storage.googleapis.com/projects/_/buckets/some-bucket",
    }
    assert deliver(services, *binary(attributes, {"bucket": "some-bucket"})).status == 200
    assert deliver(services, *storage_event("unknown-bucket", "x", event_id="q-2")).status == 200
    assert isinstance(services.quarantine, RecordingSink)
    reasons = [q["reason"] for q in services.quarantine.published]
    assert reasons == ["data.name must be a non-empty string", "no route listens to storage 'unknown-bucket'"]
    assert [d.outcome for d in services.decisions.trail("q-1")] == [Outcome.QUARANTINED]


def test_completion_publishes_one_result_whatever_the_repeats(
    services: Services, backend: RecordingBackend
) -> None:
    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    backend.states["fake-1"] = RunState.SUCCEEDED
    for _ in range(3):
        assert notify(services, KEY, "SUCCEEDED").status == 200
    assert notify(services, KEY, "FAILED").status == 200, "a late, contradicting notice changes nothing"
    (result,) = results(services)
    assert result["id"]
    assert result["subject"] == KEY
    assert result["data"]["state"] == "SUCCEEDED"
    assert result["data"]["metrics"] == {"accuracy": 0.9}
    record = services.store.get(KEY)
    assert record is not None
    assert record.published_at is not None


def test_a_notice_is_a_hint_the_engine_decides(services: Services, backend: RecordingBackend) -> None:
    """KFP's exit handler says COMPLETE while its run is still RUNNING; a forged notice says
    anything. Neither moves the run: the notice comes back until the engine reports the end."""
    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    for word in ("COMPLETE", "SUCCEEDED", "FAILED"):
        answer = notify(services, KEY, word)
        assert (answer.status, answer.body["state"]) == (503, "SUBMITTED"), word
    assert results(services) == []
    backend.states["fake-1"] = RunState.SUCCEEDED
    assert notify(services, KEY, "COMPLETE").status == 200
    assert results(services)[0]["data"]["state"] == "SUCCEEDED"
    notices = [d for d in services.decisions.trail(KEY) if d.event_type == "completion notice"]
    assert [d.outcome for d in notices] == [Outcome.RETRY] * 3 + [Outcome.COMPLETED], (
        "every notice is recorded"
    )


def test_state_names_of_every_engine() -> None:
    assert RunState.parse("CANCELLED") is RunState.CANCELED
    assert RunState.parse("PIPELINE_STATE_CANCELLED") is RunState.CANCELED
    assert RunState.parse("canceled") is RunState.CANCELED
    assert RunState.parse("COMPLETE") is RunState.SUCCEEDED
    assert not RunState.parse("RUNNING").terminal
    assert not RunState.parse("PAUSED").terminal


def test_a_notice_for_an_unknown_run_is_quarantined(services: Services) -> None:
    answer = notify(services, "nobody/knows", "SUCCEEDED")
    assert answer.status == 200
    assert answer.body["outcome"] == Outcome.QUARANTINED


def test_reconcile_completes_runs_whose_notice_was_lost(
    services: Services, backend: RecordingBackend
) -> None:
    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    assert completion.reconcile(services).done == 0, "still running"
    backend.states["fake-1"] = RunState.CANCELED
    assert completion.reconcile(services).done == 1
    assert completion.reconcile(services).done == 0
    assert [r["data"]["state"] for r in results(services)] == ["CANCELED"]


def test_a_manifest_runs_once_when_its_whole_batch_has_landed(
    services: Services, backend: RecordingBackend, tmp_path: Path
) -> None:
    from dataclasses import replace

    from functions.adapters.objects import LocalObjectStore

    landing = tmp_path / "landing" / "acme-survey-batches" / "batches" / "b7"
    landing.mkdir(parents=True)
    (landing / "_MANIFEST.json").write_text('{"objects": ["part-0.csv", "part-1.csv"]}')
    services = replace(services, objects=LocalObjectStore(tmp_path / "landing"))
    event = storage_event("acme-survey-batches", "batches/b7/_MANIFEST.json")
    not_ready = deliver(services, *event)
    assert not_ready.status == 503
    assert "missing or empty: 2 of 2 objects" in str(not_ready.body)
    (landing / "part-0.csv").write_text("a\n")
    assert deliver(services, *event).status == 503, "one object is still missing"
    (landing / "part-1.csv").write_text("b\n")
    assert deliver(services, *event).status == 200
    assert deliver(services, *event).status == 200
    (submission,) = backend.submitted
    assert submission.params["batch_objects"] == [
        "gs://acme-survey-batches/batches/b7/part-0.csv",
        "gs://acme-survey-batches/batches/b7/part-1.csv",
    ]
    assert submission.params["batch_bytes"] == 4


def test_a_notice_for_a_run_whose_claimant_died_before_recording_it(
    services: Services, backend: RecordingBackend
) -> None:
    from functions.service.records import NewRun
    from pipelines.backend import Submission

    services.store.claim(NewRun(KEY, "some-bucket-folder", "echo", "v", "local", {}, "e"), 1_800_000_000, 120)
    run_id = backend.submit(
        Submission(KEY, "some-bucket-folder", services.catalog["echo"], {})
    )  # then it died
    backend.states[run_id] = RunState.SUCCEEDED
    assert notify(services, KEY, "SUCCEEDED").status == 503, "being submitted: ask again later"
    assert results(services) == []
    services.clock.now += 121  # type: ignore[attr-defined]  # the dead claimant's lease runs out
    assert completion.reconcile(services).done == 1, "the reconciler adopts the run it finds by key"
    (result,) = results(services)
    assert result["data"]["metrics"] == {"accuracy": 0.9}, "details found by looking the run up by key"
    assert result["data"]["run_id"] == run_id, "and the run it found is recorded (found by bench/reliability)"
    record = services.store.get(KEY)
    assert record is not None
    assert (record.state, record.run_id) == (RunState.SUCCEEDED, run_id)


def test_reconcile_adopts_a_run_whose_claimant_died_and_nobody_redelivered(
    services: Services, backend: RecordingBackend, clock: Clock
) -> None:
    from functions.service.records import NewRun
    from pipelines.backend import Submission

    services.store.claim(NewRun(KEY, "some-bucket-folder", "echo", "v", "local", {}, "e"), clock(), 120)
    run_id = backend.submit(
        Submission(KEY, "some-bucket-folder", services.catalog["echo"], {})
    )  # then it died
    assert completion.reconcile(services).done == 0, "the claim is still live"
    clock.now += 121
    backend.states[run_id] = RunState.SUCCEEDED
    assert completion.reconcile(services).done == 1
    record = services.store.get(KEY)
    assert record is not None
    assert (record.state, record.run_id) == (RunState.SUCCEEDED, run_id)
    assert len(backend.submitted) == 1


def test_reconcile_starts_a_stale_claim_that_never_submitted(
    services: Services, backend: RecordingBackend, clock: Clock
) -> None:
    """Its claimant died before submitting: the reconciler queues and starts it (the event may
    never be delivered again: a queued run's was acknowledged), and a redelivery is a duplicate."""
    from functions.service.records import NewRun

    services.store.claim(NewRun(KEY, "some-bucket-folder", "echo", "v", "local", {}, "e"), clock(), 120)
    assert completion.reconcile(services).done == 0, "the claim is live"
    clock.now += 121
    assert completion.reconcile(services).done == 1
    assert [submission.run_key for submission in backend.submitted] == [KEY]
    answer = deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    assert (answer.status, answer.body["decisions"][0]["outcome"]) == (200, "duplicate")
    assert len(backend.submitted) == 1


def test_concurrent_reconcilers_publish_one_result(services: Services, backend: RecordingBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    backend.states["fake-1"] = RunState.SUCCEEDED
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: completion.reconcile(services), range(8)))
    assert len(results(services)) == 1


def test_every_outcome_has_an_answer() -> None:
    from functions.service.records import Outcome
    from functions.targets import STATUS

    assert set(STATUS) == set(Outcome)
    assert {outcome for outcome, status in STATUS.items() if status >= 300} == {Outcome.BUSY, Outcome.RETRY}


def test_cancel_asks_the_engine_and_the_engine_decides_the_end(
    services: Services, backend: RecordingBackend
) -> None:
    from events.errors import PermanentError
    from functions.service import actions

    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    assert actions.cancel(services, KEY) is RunState.SUBMITTED
    assert backend.states["fake-1"] is RunState.CANCELED, "the engine was asked"
    record = services.store.get(KEY)
    assert record is not None
    assert record.state is RunState.SUBMITTED, "recorded only when the engine reports it"
    assert completion.reconcile(services).done == 1
    assert results(services)[0]["data"]["state"] == "CANCELED"
    with pytest.raises(PermanentError, match="ended already"):
        actions.cancel(services, KEY)
    with pytest.raises(PermanentError, match="no run"):
        actions.cancel(services, "nobody/knows")


def test_cancel_ends_a_queued_run_at_once(services: Services, backend: RecordingBackend) -> None:
    from functions.service import actions, limits, passes

    services.quotas.set_flag(limits.PAUSED, True)
    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    assert actions.cancel(services, KEY) is RunState.CANCELED
    services.quotas.set_flag(limits.PAUSED, False)
    assert passes.start_queued(services).done == 0
    assert backend.submitted == []
    assert results(services)[0]["data"]["state"] == "CANCELED"


def test_a_notice_for_a_queued_run_changes_nothing(services: Services, backend: RecordingBackend) -> None:
    from functions.service import limits, passes

    services.quotas.set_flag(limits.PAUSED, True)
    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    answer = notify(services, KEY, "SUCCEEDED")
    assert (answer.status, answer.body["state"]) == (200, "QUEUED")
    services.quotas.set_flag(limits.PAUSED, False)

    assert passes.start_queued(services).done == 1, "it still starts: the forged end did not finish it"
    assert len(backend.submitted) == 1


def test_a_result_says_only_what_the_product_needs(services: Services, backend: RecordingBackend) -> None:
    """No parameters, no local paths, no backend response bodies: the published contract only."""
    backend.outputs = {
        "model": "gs://acme-models/run-1/model",
        "local": "/var/lib/kfp-trigger/runs/x/model",
        "report": "https://storage.googleapis.com/acme/report.html",
    }
    deliver(services, *storage_event("some-bucket", "folder/a.csv"))
    backend.states["fake-1"] = RunState.FAILED
    assert completion.reconcile(services).done == 1
    (result,) = results(services)
    data = result["data"]
    assert result["type"] == "dev.kfp-trigger.run.finished.v2"
    assert "params" not in data
    assert data["outputs"] == {
        "model": "gs://acme-models/run-1/model",
        "report": "https://storage.googleapis.com/acme/report.html",
    }


class RefusingStore:
    """An ObjectStore whose bucket the functions may not read (Cloud Storage's 403)."""

    def __getattr__(self, name: str) -> object:
        def refuse(*args: object) -> object:
            from events.errors import Refused

            raise Refused("Cloud Storage refuses to let the functions read gs://x: 403")

        return refuse


def test_a_manifest_in_a_bucket_the_functions_may_not_read_is_a_skip_and_an_alert(services: Services) -> None:
    """Not a redelivery for a day: the event ends as a recorded skip with the reason, and the
    operator hears of it (a grant is missing)."""
    alerts = RecordingSink()
    services = replace(services, objects=RefusingStore(), alerts=(alerts,))  # type: ignore[arg-type]
    headers, body = storage_event("acme-survey-batches", "batches/b1/_MANIFEST.json")
    answer = call(intake.handle, services, headers, body)
    assert answer.status == 200
    (decision,) = answer.body["decisions"]
    assert decision["outcome"] == "skipped"
    assert "cannot read the batch" in decision["reason"]
    (alert,) = alerts.published
    assert alert["data"]["kind"] == "access.refused"


def test_a_run_whose_metrics_cannot_be_read_ends_and_publishes_its_result(
    services: Services, backend: RecordingBackend
) -> None:
    """A pipeline root the functions may not read: the run ends as its engine says, without the
    metrics, and the operator is alerted, rather than a completion retried for a day."""
    alerts = RecordingSink()
    deliver(services, *storage_event("some-bucket", "folder/m.csv"))
    services = replace(services, objects=RefusingStore(), alerts=(alerts,))  # type: ignore[arg-type]
    backend.states["fake-1"] = RunState.SUCCEEDED
    backend.metrics, backend.outputs = {}, {"metrics": "gs://x/root/evaluate/metrics"}
    key = "some-bucket-folder/some-bucket/folder/m.csv#1"
    answer = call(completion.handle, services, *completion_event(key, "SUCCEEDED"))
    assert answer.status == 200, answer.body
    (result,) = results(services)
    assert (result["data"]["state"], result["data"]["metrics"]) == ("SUCCEEDED", {})
    assert [a["data"]["kind"] for a in alerts.published] == ["access.refused"]


def test_an_event_the_ledger_will_never_record_is_quarantined(services: Services) -> None:
    """Firestore INVALID_ARGUMENT (a record over 1 MiB): the same write fails every time, so
    the event is kept in quarantine with the reason and acknowledged, not retried for a day."""
    from events.errors import Refused

    store = services.store

    class Refusing:
        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        def claim(self, *args: object, **kwargs: object) -> object:
            raise Refused("the ledger refuses the record: InvalidArgument: too large")

    services = replace(services, store=Refusing())  # type: ignore[arg-type]
    answer = call(intake.handle, services, *storage_event("some-bucket", "folder/huge.csv"))
    assert answer.status == 200
    assert answer.body["outcome"] == "quarantined"
    assert "the ledger refuses the record" in str(answer.body["reason"])


def test_a_result_published_again_starts_no_second_run_of_a_chained_route(services: Services) -> None:
    """A chained route listens to kfp-trigger's results: a result published again (after a crash
    between publishing and recording it) has a new messageId but the same CloudEvent id, its
    `ce-id` attribute in Pub/Sub's binary mode; that is the key, so the second is a duplicate."""
    from events.eventarc import message_published

    topic = "projects/test-project/topics/my-topic"
    data = b'{"run_key": "upstream/k", "state": "SUCCEEDED"}'
    outcomes = []
    for message_id in ("m-1", "m-2"):
        attributes = {"ce-id": "result-7", "ce-type": "dev.kfp-trigger.run.finished.v2"}
        headers, delivered = message_published(topic, data, attributes, message_id=message_id)
        answer = call(
            intake.handle,
            services,
            *binary({k.removeprefix("ce-"): v for k, v in headers.items()}, delivered),
        )
        outcomes.append(answer.body["decisions"][0]["outcome"])
    assert outcomes == ["run", "duplicate"]
