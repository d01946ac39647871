"""The SQLite ledger: atomic claims (across processes), leases, absorbing terminal states."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from functions.ledger import ClaimOutcome, DecisionRecord, NewRun, Outcome, State
from functions.sqlite_ledger import SqliteLedger

RUN = NewRun("k", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 60.0


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.sqlite3")


def test_first_claim_wins_and_a_live_claim_is_busy(ledger: SqliteLedger) -> None:
    assert ledger.claim(RUN, now=0, lease=LEASE).outcome is ClaimOutcome.WON
    busy = ledger.claim(RUN, now=10, lease=LEASE)
    assert busy.outcome is ClaimOutcome.BUSY
    assert busy.retry_after == 50


def test_an_expired_claim_is_taken_over_once(ledger: SqliteLedger) -> None:
    ledger.claim(RUN, now=0, lease=LEASE)
    takeover = ledger.claim(RUN, now=61, lease=LEASE)
    assert (takeover.outcome, takeover.attempt) == (ClaimOutcome.WON, 2)
    assert ledger.claim(RUN, now=62, lease=LEASE).outcome is ClaimOutcome.BUSY
    assert not ledger.mark_submitted("k", attempt=1, run_id="stale", now=63), "the old holder lost its claim"
    assert ledger.mark_submitted("k", attempt=2, run_id="r-1", now=63)
    assert ledger.claim(RUN, now=64, lease=LEASE).outcome is ClaimOutcome.DONE


def test_release_lets_the_next_delivery_take_over_at_once(ledger: SqliteLedger) -> None:
    ledger.claim(RUN, now=0, lease=LEASE)
    ledger.release("k", attempt=1)
    assert ledger.claim(RUN, now=1, lease=LEASE).outcome is ClaimOutcome.WON


def test_terminal_states_are_absorbing(ledger: SqliteLedger) -> None:
    ledger.claim(RUN, now=0, lease=LEASE)
    ledger.mark_submitted("k", 1, "r-1", now=1)
    assert ledger.finish("k", State.SUCCEEDED, {"metrics": {"auc": 0.9}}, now=2)
    assert not ledger.finish("k", State.FAILED, {}, now=3)
    record = ledger.get("k")
    assert record is not None
    assert (record.state, record.details) == (State.SUCCEEDED, {"metrics": {"auc": 0.9}})
    with pytest.raises(ValueError, match="not a terminal state"):
        ledger.finish("k", State.SUBMITTED, {}, now=4)


def test_one_publisher_at_a_time_until_published(ledger: SqliteLedger) -> None:
    ledger.claim(RUN, now=0, lease=LEASE)
    assert ledger.begin_publish("k", now=1, lease=30) is None, "not terminal yet"
    ledger.finish("k", State.FAILED, {}, now=1)
    assert ledger.unpublished()[0].run_key == "k"
    assert ledger.begin_publish("k", now=2, lease=30) is not None
    assert ledger.begin_publish("k", now=3, lease=30) is None, "another publisher holds it"
    assert ledger.begin_publish("k", now=40, lease=30) is not None, "its lease expired"
    ledger.mark_published("k", now=41)
    assert ledger.begin_publish("k", now=100, lease=30) is None
    assert ledger.unpublished() == []


def test_queries_and_trail(ledger: SqliteLedger) -> None:
    ledger.claim(RUN, now=0, lease=LEASE)
    ledger.mark_submitted("k", 1, "r-1", now=1)
    ledger.record(DecisionRecord(1, "event-1", "b/o#1", "t", Outcome.RUN, "route", "submitted", "k"))
    ledger.record(DecisionRecord(2, "event-2", "b/o#1", "t", Outcome.DUPLICATE, "route", "", "k"))
    assert [r.run_key for r in ledger.unfinished()] == ["k"]
    assert [r.run_key for r in ledger.runs(route="route", state=State.SUBMITTED)] == ["k"]
    assert ledger.runs(state=State.FAILED) == []
    assert [d.outcome for d in ledger.trail("k")] == [Outcome.RUN, Outcome.DUPLICATE]
    assert [d.event_id for d in ledger.trail("b/o#1")] == ["event-1", "event-2"]
    assert [d.outcome for d in ledger.trail("event-2")] == [Outcome.DUPLICATE]


def _claim_in_a_process(path: str, start, results) -> None:
    ledger = SqliteLedger(Path(path))
    start.wait()
    results.put(ledger.claim(RUN, now=0, lease=LEASE).outcome.value)


def test_exactly_one_of_many_processes_wins(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    path = str(tmp_path / "ledger.sqlite3")
    SqliteLedger(Path(path))
    workers = [context.Process(target=_claim_in_a_process, args=(path, start, results)) for _ in range(8)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes.count("WON") == 1
    assert outcomes.count("BUSY") == 7
