"""No poison anywhere (issue 14 items 3 and 8): one run that cannot be acted on — its status
lookup fails for good, its backend or its route was removed — never stops a reconcile pass, a
completion notice or the queue; it is reported, tried again, and recorded FAILED after
`passes.MAX_STRIKES` passes. Work done for another event is logged under that event's id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from functions.logs import CloudLogging
from functions.service import completion, intake, limits, passes
from functions.service.ports import Services
from functions.service.records import NewRun, Outcome
from pipelines.backend import RunState
from tests.support import call, completion_event, storage_event
from tests.support.fakes import RecordingBackend


def deliver(services: Services, name: str, event_id: str) -> None:
    assert (
        call(
            intake.handle, services, *storage_event("some-bucket", f"folder/{name}", event_id=event_id)
        ).status
        == 200
    )


def run_key(name: str) -> str:
    return f"some-bucket-folder/some-bucket/folder/{name}#1"


def test_a_run_whose_status_lookup_fails_for_good_does_not_stop_the_pass(
    services: Services, backend: RecordingBackend
) -> None:
    deliver(services, "lost.csv", "e-lost")
    deliver(services, "fine.csv", "e-fine")
    backend.lost.add("fake-1")  # deleted on the engine: get run answers 404
    backend.states["fake-2"] = RunState.SUCCEEDED
    first = completion.reconcile(services)
    assert first.done == 1, "the run after the poison one is finished and published"
    (skipped,) = first.skipped
    assert skipped["run_key"] == run_key("lost.csv")
    assert skipped["reason"] == (
        "looking up its status: KFP get run: HTTP 404: run fake-1 not found"
        " (strike 1 of 3; tried again next pass)"
    )
    notice = call(completion.handle, services, *completion_event(run_key("lost.csv"), "SUCCEEDED"))
    assert notice.status == 503, "a notice for it asks to be delivered again, it does not crash"
    assert "strike 2 of 3" in str(notice.body["reason"])
    third = completion.reconcile(services)
    assert third.skipped[0]["reason"].endswith("(strike 3: recorded FAILED)")
    lost = services.store.get(run_key("lost.csv"))
    assert lost is not None
    assert lost.state is RunState.FAILED
    assert str(lost.details["error"]).startswith(
        "gave up after 3 failed attempts: looking up its status: KFP"
    )
    published = {r["subject"]: r["data"] for r in services.results.published}  # type: ignore[attr-defined]
    assert published[run_key("lost.csv")]["state"] == "FAILED"
    assert completion.reconcile(services).skipped == [], "nothing is left to skip"


def test_a_run_on_a_backend_removed_from_routes_is_reported_not_raised(services: Services) -> None:
    gone = NewRun("gone/1", "some-bucket-folder", "echo", "v", "kfp", {}, "e-gone")
    claim = services.store.claim(gone, services.clock(), 60)
    services.store.mark_submitted(gone.run_key, claim.attempt, "run-9", services.clock())
    report = completion.reconcile(services)
    assert report.skipped == [
        {
            "run_key": "gone/1",
            "reason": "looking up its status: backend 'kfp' of run 'gone/1'"
            " is not configured any more (strike 1 of 3; tried again next pass)",
        }
    ]


def test_a_queued_run_whose_route_was_removed_does_not_block_the_queue(
    services: Services, backend: RecordingBackend
) -> None:
    orphan = NewRun("removed/1", "removed-route", "echo", "v", "local", {}, "e-orphan")
    claim = services.store.claim(orphan, services.clock(), 60)
    services.queue.queue(orphan.run_key, claim.attempt, "max_active 1 reached", services.clock())
    services.quotas.set_flag(limits.PAUSED, True)
    deliver(services, "waiting.csv", "e-waiting")  # queued behind the orphan
    services.quotas.set_flag(limits.PAUSED, False)
    report = passes.start_queued(services)
    assert report.done == 1
    assert [s.run_key for s in backend.submitted] == [run_key("waiting.csv")]
    assert report.skipped[0]["run_key"] == "removed/1"
    assert (
        "route 'removed-route' of run 'removed/1' is not in routes.yaml any more"
        in report.skipped[0]["reason"]
    )
    for _ in range(2):
        completion.reconcile(services)
    orphaned = services.store.get("removed/1")
    assert orphaned is not None
    assert orphaned.state is RunState.FAILED
    assert [d.outcome for d in services.decisions.trail("removed/1")] == [Outcome.FAILED]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the `kfp_trigger` loggers write, as Cloud Logging would read it."""
    logger = logging.getLogger("kfp_trigger")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLogging())
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_queued_run_started_by_another_runs_end_is_logged_under_its_own_event(
    services: Services, backend: RecordingBackend, log_lines: io.StringIO
) -> None:
    """Issue 14 item 8: it was logged under the ending run's event id."""
    from functions.logs import request

    deliver(services, "first.csv", "e-first")
    services.quotas.set_flag(limits.PAUSED, True)
    deliver(services, "second.csv", "e-second")
    services.quotas.set_flag(limits.PAUSED, False)
    backend.states["fake-1"] = RunState.SUCCEEDED
    log_lines.seek(0)
    log_lines.truncate()
    with request("handle_completion", None):
        notice = call(completion.handle, services, *completion_event(run_key("first.csv"), "SUCCEEDED"))
    assert notice.status == 200
    entries = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    by_run = {
        (entry.get("run_key"), entry.get("outcome")): entry["logging.googleapis.com/labels"]["event_id"]
        for entry in entries
        if entry["message"] == "decision recorded"
    }
    assert by_run[(run_key("second.csv"), "run")] == "e-second"
    assert by_run[(run_key("first.csv"), "completed")] == "e-first", "and the notice's own lines stay its own"


def test_a_refused_credential_never_fails_a_run_the_engine_still_runs(
    services: Services, backend: RecordingBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a run that is gone earns strikes: a 403 is cured by fixing the credential, and the
    engine stays the authority on how a run it knows ends."""
    from events.errors import PermanentError

    deliver(services, "running.csv", "e-running")

    def refused(run_id: str) -> None:
        raise PermanentError("KFP get run: HTTP 403: permission denied")

    monkeypatch.setattr(backend, "status", refused)
    for _ in range(5):
        (skipped,) = completion.reconcile(services).skipped
        assert (
            skipped["reason"] == "looking up its status: KFP get run: HTTP 403: permission denied (next pass)"
        )
    run = services.store.get(run_key("running.csv"))
    assert run is not None
    assert run.state is RunState.SUBMITTED
