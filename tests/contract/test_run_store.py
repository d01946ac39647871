"""The `RunStore` contract: claims, leases, terminal states, publishing, queries."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from functions.bootstrap import ledger_from
from functions.service.ledger import Ledger
from functions.service.records import (
    OTHER_ROUTES,
    ClaimOutcome,
    DecisionRecord,
    KeptEvent,
    MarkRaise,
    NewRun,
    Outcome,
    Riders,
    claim_rule,
)
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.contract.conftest import Time

RUN = NewRun("route/bucket/name#1", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 1.0


def test_first_claim_wins_and_a_live_claim_is_busy(ledger: Ledger, ledger_clock: Time) -> None:
    assert ledger.claim(RUN, ledger_clock.now(), LEASE).outcome is ClaimOutcome.WON
    busy = ledger.claim(RUN, ledger_clock.now(), LEASE)
    assert busy.outcome is ClaimOutcome.BUSY
    assert 0 < busy.retry_after <= LEASE


def test_an_expired_claim_is_taken_over_once(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), LEASE)
    ledger_clock.wait(LEASE + 0.2)
    takeover = ledger.claim(RUN, ledger_clock.now(), LEASE)
    assert (takeover.outcome, takeover.attempt) == (ClaimOutcome.WON, 2)
    assert ledger.claim(RUN, ledger_clock.now(), LEASE).outcome is ClaimOutcome.BUSY
    assert not ledger.mark_submitted(RUN.run_key, 1, "stale", ledger_clock.now()), (
        "the old holder lost its claim"
    )
    assert ledger.mark_submitted(RUN.run_key, 2, "r-1", ledger_clock.now())
    assert ledger.claim(RUN, ledger_clock.now(), LEASE).outcome is ClaimOutcome.DONE


def test_release_lets_the_next_delivery_take_over_at_once(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), 60)
    ledger.release(RUN.run_key, 1)
    assert ledger.claim(RUN, ledger_clock.now(), 60).outcome is ClaimOutcome.WON


def test_terminal_states_are_absorbing(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), 60)
    ledger.mark_submitted(RUN.run_key, 1, "r-1", ledger_clock.now())
    assert ledger.finish(RUN.run_key, RunState.SUCCEEDED, {"metrics": {"auc": 0.9}}, ledger_clock.now())
    assert not ledger.finish(RUN.run_key, RunState.FAILED, {}, ledger_clock.now())
    record = ledger.get(RUN.run_key)
    assert record is not None
    assert (record.state, record.run_id, record.params) == (RunState.SUCCEEDED, "r-1", {"n": 1})
    assert record.details == {"metrics": {"auc": 0.9}}
    with pytest.raises(ValueError, match="not a terminal state"):
        ledger.finish(RUN.run_key, RunState.SUBMITTED, {}, ledger_clock.now())


def test_one_publisher_at_a_time_until_published(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), 60)
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is None, "not terminal yet"
    ledger.finish(RUN.run_key, RunState.FAILED, {}, ledger_clock.now())
    assert [r.run_key for r in ledger.unpublished()] == [RUN.run_key]
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is not None
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is None, "another publisher holds it"
    ledger_clock.wait(LEASE + 0.2)
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is not None, "its lease expired"
    ledger.mark_published(RUN.run_key, ledger_clock.now())
    ledger_clock.wait(LEASE + 0.2)
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is None
    assert ledger.unpublished() == []


def test_stale_claims_are_those_past_their_lease(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), LEASE)
    other = NewRun("route/other#1", "route", "pipeline", "v1", "local", {}, "event-2")
    ledger.claim(other, ledger_clock.now(), 60)
    assert ledger.stale_claims(ledger_clock.now()) == []
    ledger_clock.wait(LEASE + 0.2)
    assert [r.run_key for r in ledger.stale_claims(ledger_clock.now())] == [RUN.run_key]
    ledger.mark_submitted(RUN.run_key, 1, "r-1", ledger_clock.now())
    assert ledger.stale_claims(ledger_clock.now()) == []


def test_queries(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), 60)
    ledger.mark_submitted(RUN.run_key, 1, "r-1", ledger_clock.now())
    assert [r.run_key for r in ledger.unfinished()] == [RUN.run_key]
    assert [r.run_key for r in ledger.runs(route="route", state=RunState.SUBMITTED)] == [RUN.run_key]
    assert ledger.runs(state=RunState.FAILED) == []


def test_summary(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), LEASE)
    other = NewRun("route/other#1", "route", "pipeline", "v1", "local", {}, "event-2")
    ledger.claim(other, ledger_clock.now(), LEASE)
    ledger.mark_submitted(other.run_key, 1, "r-2", ledger_clock.now())
    elsewhere = NewRun("else/x#1", "else", "pipeline", "v1", "local", {}, "event-3")
    ledger.queue(
        elsewhere.run_key,
        ledger.claim(elsewhere, ledger_clock.now(), LEASE).attempt,
        "paused",
        ledger_clock.now(),
    )
    assert ledger.summary(["route", "else", "none-yet"]) == {
        ("route", RunState.CLAIMED): 1,
        ("route", RunState.SUBMITTED): 1,
        ("else", RunState.QUEUED): 1,
    }
    assert ledger.summary(["else"]) == {
        ("else", RunState.QUEUED): 1,
        (OTHER_ROUTES, RunState.CLAIMED): 1,  # routes not named: removed from routes.yaml
        (OTHER_ROUTES, RunState.SUBMITTED): 1,
    }
    assert ledger.summary([]) == {
        (OTHER_ROUTES, RunState.CLAIMED): 1,
        (OTHER_ROUTES, RunState.SUBMITTED): 1,
        (OTHER_ROUTES, RunState.QUEUED): 1,
    }


def test_runs_are_listed_oldest_or_newest_first_up_to_the_limit(ledger: Ledger, ledger_clock: Time) -> None:
    for number in range(5):
        ledger.claim(replace(RUN, run_key=f"route/k#{number}"), ledger_clock.now() + number, LEASE)
    ledger.claim(replace(RUN, run_key="other/k#9", route="other"), ledger_clock.now() - 10, LEASE)
    assert [r.run_key for r in ledger.runs(limit=2)] == ["other/k#9", "route/k#0"]
    assert [r.run_key for r in ledger.runs(route="route", state=RunState.CLAIMED, limit=3)] == [
        "route/k#0",
        "route/k#1",
        "route/k#2",
    ]
    assert [r.run_key for r in ledger.runs(route="route", limit=10)][-1] == "route/k#4"
    assert [r.run_key for r in ledger.runs(limit=2, newest_first=True)] == ["route/k#4", "route/k#3"]
    newest = ledger.runs(route="route", state=RunState.CLAIMED, limit=3, newest_first=True)
    assert [r.run_key for r in newest] == ["route/k#4", "route/k#3", "route/k#2"]
    assert [r.run_key for r in ledger.runs(limit=10, newest_first=True)][-1] == "other/k#9"


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


@pytest.mark.slow  # processes racing: the full suite runs it, make check does not
def test_exactly_one_of_many_processes_wins(ledger_url: str) -> None:
    outcomes = claim_race(ledger_url, 8)
    assert outcomes.count("WON") == 1
    assert outcomes.count("BUSY") == 7


def test_every_api_error_is_transient_but_a_record_firestore_will_never_take() -> None:
    """A ledger that cannot record must never let an event be acknowledged; but a write Firestore
    refuses as such (INVALID_ARGUMENT: a document over 1 MiB; OUT_OF_RANGE) fails the same way
    every time, so it is `Refused`, for the caller to record for good
    (cloud.google.com/firestore/docs/understand-error-codes)."""
    from google.api_core import exceptions

    from events.errors import Refused, TransientError
    from functions.adapters.firestore.database import mapped

    errors: list[Callable[[], Exception]] = [
        lambda: exceptions.ServiceUnavailable("down"),
        lambda: exceptions.DeadlineExceeded("slow"),
        lambda: exceptions.Aborted("contention"),
        lambda: exceptions.PermissionDenied("iam"),
        lambda: exceptions.RetryError("gave up", cause=None),
    ]
    for make in errors:
        with pytest.raises(TransientError), mapped():
            raise make()
    for refusal in (
        exceptions.InvalidArgument("Document exceeds the maximum size"),
        exceptions.OutOfRange("x"),
    ):
        with pytest.raises(Refused, match="the ledger refuses the record"), mapped():
            raise refusal


@pytest.mark.emulator
def test_two_deployments_ledgers_in_one_project_share_no_document(firestore_emulator: str) -> None:
    """Each deployment's ledger is a database of its own (`?database=`, the module's PREFIX-ledger):
    the same collection name in two of them holds two runs."""
    first = ledger_from(f"firestore://{PROJECT}/kfp-trigger-runs?database=kfp-trigger-ledger")
    second = ledger_from(f"firestore://{PROJECT}/kfp-trigger-runs?database=acme-ml-ledger")
    key = f"shared-key-{uuid.uuid4().hex[:8]}"
    assert first.claim(replace(RUN, run_key=key), 1.0, LEASE).outcome is ClaimOutcome.WON
    assert second.claim(replace(RUN, run_key=key), 1.0, LEASE).outcome is ClaimOutcome.WON
    assert second.get(key) is not None


def test_a_run_keeps_the_trace_that_decided_it(ledger: Ledger, ledger_clock: Time) -> None:
    """Its submit, hours later from the queue, and its result continue that trace."""
    traced = replace(RUN, trace="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ledger.claim(traced, ledger_clock.now(), LEASE)
    ledger.mark_submitted(RUN.run_key, 1, "r-1", ledger_clock.now())
    ledger.finish(RUN.run_key, RunState.SUCCEEDED, {}, ledger_clock.now())
    stored = ledger.get(RUN.run_key)
    assert stored is not None
    assert stored.trace == traced.trace


def test_a_sqlite_ledger_from_before_traces_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "ledger.sqlite3"
    ledger_from(f"sqlite:///{path}").claim(RUN, 1.0, LEASE)
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE runs DROP COLUMN trace")  # as a ledger written before issue 17 was
    reopened = ledger_from(f"sqlite:///{path}")
    assert reopened.get(RUN.run_key).trace == ""  # type: ignore[union-attr]
    assert reopened.claim(replace(RUN, run_key="new", trace="t"), 2.0, LEASE).outcome is ClaimOutcome.WON
    assert reopened.get("new").trace == "t"  # type: ignore[union-attr]


def test_sqlite_writers_leave_checkpoints_to_a_thread_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that checkpointed held every other writer through the copy and its fsync
    (issue 19): commits only append to the WAL, and the process's checkpointer moves it into the
    database file. The file grows, with no writer near SQLite's own threshold."""
    from functions.adapters.sqlite import database
    from functions.adapters.sqlite.ledger import SqliteLedger

    monkeypatch.setattr(database, "CHECKPOINT_EVERY", 10)
    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(path)
    ledger.claim(RUN, 1.0, LEASE)
    size = path.stat().st_size
    for n in range(database.CHECKPOINT_EVERY - 2):
        ledger.claim(replace(RUN, run_key=f"run-{n}"), 1.0, LEASE)
    time.sleep(0.5)
    assert path.stat().st_size == size, "a checkpoint before the checkpointer's turn"
    ledger.claim(replace(RUN, run_key="tenth"), 1.0, LEASE)
    deadline = time.monotonic() + 10
    while path.stat().st_size == size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > size
    assert ledger.get("tenth") is not None


def test_a_state_change_writes_its_riders_in_the_same_commit(ledger: Ledger, ledger_clock: Time) -> None:
    """Riders (issue 19): a won claim writes them, a lost one does not; mark_submitted and
    mark_published write them whether or not the run moved (the trail says what was done);
    finish writes its decision only when the run moved, its riders always."""

    def decision(outcome: Outcome, reason: str) -> DecisionRecord:
        return DecisionRecord(ledger_clock.now(), "event-1", "", "t", outcome, "route", reason, RUN.run_key)

    def told(reason: str) -> Riders:
        return Riders(decisions=(decision(Outcome.RUN, reason),))

    kept = KeptEvent("event-1", ledger_clock.now(), {"id": "event-1"}, "{}")
    won = ledger.claim(RUN, ledger_clock.now(), LEASE, Riders(kept=kept, marks=(MarkRaise("b/o", 7, 0.0),)))
    lost = ledger.claim(RUN, ledger_clock.now(), LEASE, Riders(marks=(MarkRaise("b/o", 9, 0.0),)))
    assert (won.outcome, lost.outcome) == (ClaimOutcome.WON, ClaimOutcome.BUSY)
    assert ledger.kept("event-1") == kept, "the won claim wrote its riders"
    assert ledger.mark("b/o") == 7, "the lost claim did not"
    assert ledger.mark_submitted(
        RUN.run_key, won.attempt, "r-1", ledger_clock.now(), told("as r-1"), won.version
    )
    assert not ledger.mark_submitted(
        RUN.run_key, won.attempt, "r-2", ledger_clock.now(), told("r-2"), won.version
    )
    ended = decision(Outcome.COMPLETED, "ended")
    assert ledger.finish(
        RUN.run_key, RunState.SUCCEEDED, {}, ledger_clock.now(), decision=ended, also=told("a")
    )
    assert not ledger.finish(
        RUN.run_key,
        RunState.FAILED,
        {},
        ledger_clock.now(),
        decision=decision(Outcome.FAILED, "x"),
        also=told("b"),
    )
    ledger.mark_published(RUN.run_key, ledger_clock.now(), told("published"))
    ledger.write(told("alone"))
    assert [(d.outcome, d.reason) for d in ledger.trail(RUN.run_key)] == [
        (Outcome.RUN, "as r-1"),
        (Outcome.RUN, "r-2"),
        (Outcome.COMPLETED, "ended"),
        (Outcome.RUN, "a"),
        (Outcome.RUN, "b"),
        (Outcome.RUN, "published"),
        (Outcome.RUN, "alone"),
    ]


def test_a_claim_changed_since_it_was_won_is_not_marked_by_its_version(
    ledger: Ledger, ledger_clock: Time
) -> None:
    """`mark_submitted` with the claim's version compares and sets without a read; a claim that
    was given up and taken over since is not the holder's any more, version or not."""
    first = ledger.claim(RUN, ledger_clock.now(), LEASE)
    ledger.release(RUN.run_key, first.attempt)
    second = ledger.claim(RUN, ledger_clock.now(), LEASE)
    assert (second.outcome, second.attempt) == (ClaimOutcome.WON, 2)
    assert not ledger.mark_submitted(
        RUN.run_key, first.attempt, "stale", ledger_clock.now(), version=first.version
    )
    assert ledger.mark_submitted(
        RUN.run_key, second.attempt, "r-1", ledger_clock.now(), version=second.version
    )
    assert ledger.get(RUN.run_key).run_id == "r-1"  # type: ignore[union-attr]


def test_finish_can_take_the_right_to_publish_in_its_commit(ledger: Ledger, ledger_clock: Time) -> None:
    claim = ledger.claim(RUN, ledger_clock.now(), LEASE)
    ledger.mark_submitted(RUN.run_key, claim.attempt, "r-1", ledger_clock.now())
    ended = ledger.finish(
        RUN.run_key, RunState.SUCCEEDED, {"metrics": {"auc": 0.9}}, ledger_clock.now(), publish_lease=LEASE
    )
    assert ended is not None
    assert (ended.state, ended.run_id, ended.details) == (
        RunState.SUCCEEDED,
        "r-1",
        {"metrics": {"auc": 0.9}},
    )
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is None, "the finisher holds it"
    ledger_clock.wait(LEASE + 0.1)
    assert ledger.begin_publish(RUN.run_key, ledger_clock.now(), LEASE) is not None, "its lease expired"


def test_one_read_finds_runs_marks_and_flags(ledger: Ledger, ledger_clock: Time) -> None:
    ledger.claim(RUN, ledger_clock.now(), LEASE)
    ledger.raise_mark("b/o", 5, ledger_clock.now())
    ledger.set_flag("paused", True)
    reading = ledger.read(
        ledger_clock.now(), [RUN.run_key, "absent"], marks=["b/o", "b/new"], flags=["paused", "x"]
    )
    assert set(reading.runs) == {RUN.run_key}
    assert reading.runs[RUN.run_key].state is RunState.CLAIMED
    assert reading.marks == {"b/o": 5, "b/new": 0}
    assert reading.flags == {"paused": True, "x": False}
    assert claim_rule(reading.runs[RUN.run_key], reading.at).outcome is ClaimOutcome.BUSY  # type: ignore[union-attr]
    assert ledger.read(ledger_clock.now(), []).runs == {}


def test_a_checkpointer_whose_ledger_file_is_gone_ends_quietly(tmp_path: Path) -> None:
    """A scratch ledger's folder removed while its checkpointer starts (a bench, a test): the
    thread ends without an error; the next commit on a live file starts a new one."""
    from functions.adapters.sqlite import database

    shared = database.SharedFile(tmp_path / "removed" / "ledger.sqlite3")
    shared.commits = database.CHECKPOINT_EVERY - 1
    shared.committed()  # the checkpointer's turn: it cannot open the file
    assert shared.checkpointer is not None
    shared.checkpointer.join(timeout=10)
    assert not shared.checkpointer.is_alive()


def test_a_run_keeps_what_its_route_named_it_by(ledger: Ledger, ledger_clock: Time) -> None:
    """Its partition (`kfp-trigger partitions`), its key under limits.concurrency, and the key
    its freshness is judged by (`expect.per`)."""
    named = replace(RUN, concurrency="acme", partition="acme/2026-12-01", fresh_key="acme")
    assert ledger.claim(named, ledger_clock.now(), LEASE).outcome is ClaimOutcome.WON
    (found,) = ledger.runs(route=RUN.route)
    assert (found.concurrency, found.partition, found.fresh_key) == ("acme", "acme/2026-12-01", "acme")
