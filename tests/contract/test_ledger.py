"""One contract, every ledger: SQLite (a file) and Firestore (the emulator).

Times are real and leases short, because Firestore compares leases on its own server clock.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from functions.bootstrap import ledger_from
from functions.service.ports import Ledger
from functions.service.records import ClaimOutcome, DecisionRecord, NewRun, Outcome
from pipelines.backend import RunState
from tests.conftest import PROJECT

RUN = NewRun("route/bucket/name#1", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 1.0


@pytest.fixture(params=["sqlite", "firestore"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "firestore":
        request.getfixturevalue("firestore_emulator")
        return f"firestore://{PROJECT}/runs-{uuid.uuid4().hex[:12]}"
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture
def ledger(ledger_url: str) -> Ledger:
    return ledger_from(ledger_url)


def now() -> float:
    return time.time()


def test_first_claim_wins_and_a_live_claim_is_busy(ledger: Ledger) -> None:
    assert ledger.claim(RUN, now(), LEASE).outcome is ClaimOutcome.WON
    busy = ledger.claim(RUN, now(), LEASE)
    assert busy.outcome is ClaimOutcome.BUSY
    assert 0 < busy.retry_after <= LEASE


def test_an_expired_claim_is_taken_over_once(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), LEASE)
    time.sleep(LEASE + 0.2)
    takeover = ledger.claim(RUN, now(), LEASE)
    assert (takeover.outcome, takeover.attempt) == (ClaimOutcome.WON, 2)
    assert ledger.claim(RUN, now(), LEASE).outcome is ClaimOutcome.BUSY
    assert not ledger.mark_submitted(RUN.run_key, 1, "stale", now()), "the old holder lost its claim"
    assert ledger.mark_submitted(RUN.run_key, 2, "r-1", now())
    assert ledger.claim(RUN, now(), LEASE).outcome is ClaimOutcome.DONE


def test_release_lets_the_next_delivery_take_over_at_once(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), 60)
    ledger.release(RUN.run_key, 1)
    assert ledger.claim(RUN, now(), 60).outcome is ClaimOutcome.WON


def test_terminal_states_are_absorbing(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), 60)
    ledger.mark_submitted(RUN.run_key, 1, "r-1", now())
    assert ledger.finish(RUN.run_key, RunState.SUCCEEDED, {"metrics": {"auc": 0.9}}, now())
    assert not ledger.finish(RUN.run_key, RunState.FAILED, {}, now())
    record = ledger.get(RUN.run_key)
    assert record is not None
    assert (record.state, record.run_id, record.params) == (RunState.SUCCEEDED, "r-1", {"n": 1})
    assert record.details == {"metrics": {"auc": 0.9}}
    with pytest.raises(ValueError, match="not a terminal state"):
        ledger.finish(RUN.run_key, RunState.SUBMITTED, {}, now())


def test_one_publisher_at_a_time_until_published(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), 60)
    assert ledger.begin_publish(RUN.run_key, now(), LEASE) is None, "not terminal yet"
    ledger.finish(RUN.run_key, RunState.FAILED, {}, now())
    assert [r.run_key for r in ledger.unpublished()] == [RUN.run_key]
    assert ledger.begin_publish(RUN.run_key, now(), LEASE) is not None
    assert ledger.begin_publish(RUN.run_key, now(), LEASE) is None, "another publisher holds it"
    time.sleep(LEASE + 0.2)
    assert ledger.begin_publish(RUN.run_key, now(), LEASE) is not None, "its lease expired"
    ledger.mark_published(RUN.run_key, now())
    time.sleep(LEASE + 0.2)
    assert ledger.begin_publish(RUN.run_key, now(), LEASE) is None
    assert ledger.unpublished() == []


def test_queries_and_trail(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), 60)
    ledger.mark_submitted(RUN.run_key, 1, "r-1", now())
    ledger.record(
        DecisionRecord(1.0, "event-1", "b/o#1", "t", Outcome.RUN, "route", "submitted", RUN.run_key)
    )
    ledger.record(DecisionRecord(2.0, "event-2", "b/o#1", "t", Outcome.DUPLICATE, "route", "", RUN.run_key))
    assert [r.run_key for r in ledger.unfinished()] == [RUN.run_key]
    assert [r.run_key for r in ledger.runs(route="route", state=RunState.SUBMITTED)] == [RUN.run_key]
    assert ledger.runs(state=RunState.FAILED) == []
    assert [d.outcome for d in ledger.trail(RUN.run_key)] == [Outcome.RUN, Outcome.DUPLICATE]
    assert [d.event_id for d in ledger.trail("b/o#1")] == ["event-1", "event-2"]
    assert [d.outcome for d in ledger.trail("event-2")] == [Outcome.DUPLICATE]


def _claim_in_a_process(url: str, start, results) -> None:
    ledger = ledger_from(url)
    start.wait()
    results.put(ledger.claim(RUN, time.time(), 60).outcome.value)


def claim_race(url: str, workers: int) -> list[str]:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_claim_in_a_process, args=(url, start, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    return sorted(results.get(timeout=5) for _ in processes)


def test_exactly_one_of_many_processes_wins(ledger_url: str, ledger: Ledger) -> None:
    outcomes = claim_race(ledger_url, 8)
    assert outcomes.count("WON") == 1
    assert outcomes.count("BUSY") == 7


def test_every_api_error_is_transient() -> None:
    """A ledger that cannot record must never let an event be acknowledged."""
    from google.api_core import exceptions

    from events.errors import TransientError
    from functions.adapters.firestore_ledger import _mapped

    errors: list[Callable[[], Exception]] = [
        lambda: exceptions.ServiceUnavailable("down"),
        lambda: exceptions.DeadlineExceeded("slow"),
        lambda: exceptions.Aborted("contention"),
        lambda: exceptions.PermissionDenied("iam"),
        lambda: exceptions.RetryError("gave up", cause=None),
    ]
    for make in errors:
        with pytest.raises(TransientError), _mapped():
            raise make()


def test_stale_claims_are_those_past_their_lease(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), LEASE)
    other = NewRun("route/other#1", "route", "pipeline", "v1", "local", {}, "event-2")
    ledger.claim(other, now(), 60)
    assert ledger.stale_claims(now()) == []
    time.sleep(LEASE + 0.2)
    assert [r.run_key for r in ledger.stale_claims(now())] == [RUN.run_key]
    ledger.mark_submitted(RUN.run_key, 1, "r-1", now())
    assert ledger.stale_claims(now()) == []


def test_a_queued_run_is_a_duplicate_until_taken_once(ledger: Ledger) -> None:
    claim = ledger.claim(RUN, now(), LEASE)
    assert not ledger.queue(RUN.run_key, claim.attempt + 1, "not the holder", now())
    assert ledger.queue(RUN.run_key, claim.attempt, "max_active 2 reached", now())
    record = ledger.get(RUN.run_key)
    assert record is not None
    assert (record.state, record.details) == (RunState.QUEUED, {"queued": "max_active 2 reached"})
    assert ledger.claim(RUN, now(), LEASE).outcome is ClaimOutcome.DONE, "a redelivery is acknowledged"
    assert [r.run_key for r in ledger.queued(now())] == [RUN.run_key]
    taken = ledger.take(RUN.run_key, now(), LEASE)
    assert (taken.outcome, taken.attempt) == (ClaimOutcome.WON, 2)
    assert ledger.take(RUN.run_key, now(), LEASE).outcome is ClaimOutcome.BUSY
    assert ledger.queued(now()) == []
    assert ledger.mark_submitted(RUN.run_key, 2, "r-1", now())
    assert ledger.take(RUN.run_key, now(), LEASE).outcome is ClaimOutcome.DONE


def test_a_batch_opens_once_and_collects_its_members_as_a_set(ledger: Ledger) -> None:
    first = ledger.open_batch(RUN, not_before=now() + 60, now=now())
    again = ledger.open_batch(replace(RUN, params={"n": 2}), not_before=now() + 120, now=now())
    assert (first.state, again.params, again.not_before) == (RunState.QUEUED, {"n": 1}, first.not_before)
    for member in ("gs://b/2.csv", "gs://b/1.csv", "gs://b/2.csv"):
        ledger.add_member(RUN.run_key, member)
    assert ledger.members(RUN.run_key) == ["gs://b/1.csv", "gs://b/2.csv"]
    assert ledger.members("another") == []
    assert ledger.queued(now()) == [], "not before its window closes"
    assert [r.run_key for r in ledger.queued(now() + 61)] == [RUN.run_key]


def test_a_limit_of_n_places_is_never_held_n_plus_one_times(ledger: Ledger) -> None:
    assert ledger.hold("active:r", 2, "a", now())
    assert ledger.hold("active:r", 2, "a", now()), "holding twice is one place"
    assert ledger.hold("active:r", 2, "b", now())
    assert not ledger.hold("active:r", 2, "c", now())
    assert ledger.hold("active:other", 2, "c", now()), "scopes are separate"
    ledger.let_go("active:r", "a")
    ledger.let_go("active:r", "nobody")
    assert ledger.hold("active:r", 2, "c", now())
    assert not ledger.hold("active:r", 2, "a", now())


def test_places_under_a_race_from_many_processes(ledger_url: str, ledger: Ledger) -> None:
    held = hold_race(ledger_url, 8, limit=3)
    assert held.count(True) == 3


def _hold(url: str, holder: str, limit: int, start: Any, results: Any) -> None:
    start.wait()
    results.put(ledger_from(url).hold("daily:2026-11-27", limit, holder, now()))


def hold_race(url: str, processes: int, limit: int) -> list[bool]:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(target=_hold, args=(url, f"run-{n}", limit, start, results)) for n in range(processes)
    ]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=120)
    return [results.get(timeout=5) for _ in workers]


def test_flags_and_high_water_marks(ledger: Ledger) -> None:
    assert not ledger.flag("paused")
    ledger.set_flag("paused", True)
    assert ledger.flag("paused")
    ledger.set_flag("paused", False)
    assert not ledger.flag("paused")
    assert ledger.raise_mark("b/o", 5) == 5
    assert ledger.raise_mark("b/o", 3) == 5, "an older generation does not lower the mark"
    assert ledger.raise_mark("b/o", 7) == 7
    assert ledger.raise_mark("b/other", 1) == 1


def test_summary_and_decision_counts(ledger: Ledger) -> None:
    ledger.claim(RUN, now(), LEASE)
    other = NewRun("route/other#1", "route", "pipeline", "v1", "local", {}, "event-2")
    ledger.claim(other, now(), LEASE)
    ledger.mark_submitted(other.run_key, 1, "r-2", now())
    elsewhere = NewRun("else/x#1", "else", "pipeline", "v1", "local", {}, "event-3")
    ledger.queue(elsewhere.run_key, ledger.claim(elsewhere, now(), LEASE).attempt, "paused", now())
    assert ledger.summary() == {
        ("route", RunState.CLAIMED): 1,
        ("route", RunState.SUBMITTED): 1,
        ("else", RunState.QUEUED): 1,
    }
    for event_id in ("q-1", "q-2"):
        ledger.record(DecisionRecord(now(), event_id, "", "t", Outcome.QUARANTINED, reason="bad"))
    ledger.record(DecisionRecord(now(), "s-1", "", "t", Outcome.SKIPPED, reason="no match"))
    assert ledger.count_decisions(Outcome.QUARANTINED) == 2
    assert ledger.count_decisions(Outcome.FAILED) == 0


def test_status_and_explain_read_this_ledger_through_the_cli(
    ledger_url: str, ledger: Ledger, tmp_path: Path
) -> None:
    """`kfp-trigger status` and `explain` on either ledger, as an operator runs them."""
    import json
    import os
    import subprocess

    from tests.support import ROOT, kfp_trigger

    ledger.claim(RUN, now() - 10, LEASE)
    ledger.record(
        DecisionRecord(now(), "event-1", "b/o#1", "t", Outcome.RUN, "route", "submitted as r-1", RUN.run_key)
    )
    ledger.record(DecisionRecord(now(), "bad-1", "", "t", Outcome.QUARANTINED, reason="not JSON"))
    ledger.set_flag("paused", True)
    time.sleep(LEASE + 0.2)  # the claim's holder is gone: its lease runs out (on the server's clock)
    env = {**os.environ, "KFP_TRIGGER_LEDGER": ledger_url, "KFP_TRIGGER_STATE_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kfp_trigger(*args), capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
        )

    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["paused"] is True
    assert report["runs"] == {"route": {"CLAIMED": 1}}
    assert (report["queued"], report["quarantined"]) == (0, 1)
    assert report["oldest_open_claim"]["run_key"] == RUN.run_key
    assert report["oldest_open_claim"]["past_lease"] is True
    text = run("status").stdout
    assert "PAUSED" in text
    assert "PAST ITS LEASE" in text
    explained = run("explain", "event-1")
    assert explained.returncode == 0, explained.stderr
    assert "submitted as r-1" in explained.stdout
    assert f"run {RUN.run_key}: CLAIMED" in explained.stdout
