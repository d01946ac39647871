"""The `RunQueue` contract: queued runs, taking them once, coalescing batches."""

from __future__ import annotations

from dataclasses import replace

from functions.service.ports import Ledger
from functions.service.records import ClaimOutcome, NewRun
from pipelines.backend import RunState
from tests.contract.conftest import Time

RUN = NewRun("route/bucket/name#1", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 1.0


def test_a_queued_run_is_a_duplicate_until_taken_once(ledger: Ledger, ledger_clock: Time) -> None:
    claim = ledger.claim(RUN, ledger_clock.now(), LEASE)
    assert not ledger.queue(RUN.run_key, claim.attempt + 1, "not the holder", ledger_clock.now())
    assert ledger.queue(RUN.run_key, claim.attempt, "max_active 2 reached", ledger_clock.now())
    record = ledger.get(RUN.run_key)
    assert record is not None
    assert (record.state, record.details) == (RunState.QUEUED, {"queued": "max_active 2 reached"})
    assert ledger.claim(RUN, ledger_clock.now(), LEASE).outcome is ClaimOutcome.DONE, (
        "a redelivery is acknowledged"
    )
    assert [r.run_key for r in ledger.queued(ledger_clock.now())] == [RUN.run_key]
    taken = ledger.take(RUN.run_key, ledger_clock.now(), LEASE)
    assert (taken.outcome, taken.attempt) == (ClaimOutcome.WON, 2)
    assert ledger.take(RUN.run_key, ledger_clock.now(), LEASE).outcome is ClaimOutcome.BUSY
    assert ledger.queued(ledger_clock.now()) == []
    assert ledger.mark_submitted(RUN.run_key, 2, "r-1", ledger_clock.now())
    assert ledger.take(RUN.run_key, ledger_clock.now(), LEASE).outcome is ClaimOutcome.DONE


def test_a_batch_opens_once_and_collects_its_members_as_a_set(ledger: Ledger, ledger_clock: Time) -> None:
    first = ledger.open_batch(RUN, not_before=ledger_clock.now() + 60, now=ledger_clock.now())
    again = ledger.open_batch(
        replace(RUN, params={"n": 2}), not_before=ledger_clock.now() + 120, now=ledger_clock.now()
    )
    assert (first.state, again.params, again.not_before) == (RunState.QUEUED, {"n": 1}, first.not_before)
    for member in ("gs://b/2.csv", "gs://b/1.csv", "gs://b/2.csv"):
        ledger.add_member(RUN.run_key, member)
    assert ledger.members(RUN.run_key) == ["gs://b/1.csv", "gs://b/2.csv"]
    assert ledger.members("another") == []
    assert ledger.queued(ledger_clock.now()) == [], "not before its window closes"
    assert [r.run_key for r in ledger.queued(ledger_clock.now() + 61)] == [RUN.run_key]
