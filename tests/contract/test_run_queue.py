"""The `RunQueue` contract: queued runs, taking them once, coalescing batches."""

from __future__ import annotations

from dataclasses import replace

from functions.service.ledger import Ledger
from functions.service.records import ClaimOutcome, NewRun
from functions.service.windows import JoinStatus, Part, Terms
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


def test_a_batch_opens_once_and_an_object_joins_one_batch_of_its_route_ever(
    ledger: Ledger, ledger_clock: Time
) -> None:
    now = ledger_clock.now()
    assert ledger.join_batch(RUN, now + 60, "gs://b/2.csv", "b/2.csv#1", now) == (RUN.run_key, True)
    assert ledger.join_batch(replace(RUN, params={"n": 2}), now + 120, "gs://b/1.csv", "b/1.csv#1", now) == (
        RUN.run_key,
        True,
    )
    record = ledger.get(RUN.run_key)
    assert record is not None
    assert (record.state, record.params, record.not_before) == (RunState.QUEUED, {"n": 1}, now + 60)
    assert ledger.join_batch(RUN, now + 60, "gs://b/2.csv", "b/2.csv#1", now) == (RUN.run_key, False)
    later = replace(RUN, run_key="route/later")
    assert ledger.join_batch(later, now, "gs://b/2.csv", "b/2.csv#1", now) == (RUN.run_key, False), (
        "another batch of the route finds it where it is"
    )
    assert ledger.join_batch(later, now, "gs://b/2.csv", "b/2.csv#2", now) == (later.run_key, True), (
        "a new generation is a new member"
    )
    other_route = replace(RUN, run_key="other/1", route="other")
    assert ledger.join_batch(other_route, now, "gs://b/2.csv", "b/2.csv#1", now) == (
        other_route.run_key,
        True,
    )
    assert ledger.members(RUN.run_key) == ["gs://b/1.csv", "gs://b/2.csv"]
    assert ledger.members("another") == []
    assert RUN.run_key not in [r.run_key for r in ledger.queued(now)], "not before its window closes"
    assert RUN.run_key in [r.run_key for r in ledger.queued(now + 61)]


def test_a_large_batch_is_stored_as_members_apart_from_its_run(ledger: Ledger, ledger_clock: Time) -> None:
    """A manifest's 1,201 objects (more than one Firestore commit holds), written twice as a
    redelivery would: each is a member once, and another run's members stay its own."""
    objects = [f"gs://b/wave/part-{n:05d}.csv" for n in range(1201)]
    ledger.add_members(RUN, objects, ledger_clock.now())
    ledger.add_members(RUN, objects[:10], ledger_clock.now())
    assert ledger.members(RUN.run_key) == objects
    assert ledger.members("another") == []


def test_an_object_cannot_join_a_batch_whose_run_was_taken(ledger: Ledger, ledger_clock: Time) -> None:
    now = ledger_clock.now()
    ledger.join_batch(RUN, now, "gs://b/1.csv", "b/1.csv#1", now)
    assert ledger.take(RUN.run_key, now, LEASE).outcome is ClaimOutcome.WON
    assert ledger.join_batch(RUN, now, "gs://b/3.csv", "b/3.csv#1", now) is None
    assert ledger.members(RUN.run_key) == ["gs://b/1.csv"], "the started run's list does not change"


def test_a_run_keeps_its_concurrency_key_through_the_queue(ledger: Ledger, ledger_clock: Time) -> None:
    """limits.concurrency: the key a run holds a place under is recorded with it (issue 16)."""
    tenant = replace(RUN, run_key="per-tenant/1", concurrency="acme")
    claim = ledger.claim(tenant, ledger_clock.now(), LEASE)
    ledger.queue(
        tenant.run_key, claim.attempt, "concurrency.max_active 1 for key 'acme' reached", ledger_clock.now()
    )
    (queued,) = [r for r in ledger.queued(ledger_clock.now()) if r.run_key == tenant.run_key]
    assert queued.concurrency == "acme"
    ledger.claim(RUN, ledger_clock.now(), LEASE)
    untouched = ledger.get(RUN.run_key)
    assert untouched is not None
    assert untouched.concurrency == ""


NAMES = ("closed", "files")


def part(event_id: str, at: float, **values: object) -> Part:
    return Part(event_id, f"key-of-{event_id}", at, values)


def test_a_join_window_keeps_each_parts_first_arrival_and_completes_once(
    ledger: Ledger, ledger_clock: Time
) -> None:
    now = ledger_clock.now()
    first = ledger.arrive(
        "join", "acme/s1", "closed", part("c-1", now, tenant="acme"), Terms(NAMES, 3600), now
    )
    assert (first.status, first.added, first.opened, first.expires) == (
        JoinStatus.OPEN,
        True,
        now,
        now + 3600,
    )
    again = ledger.arrive(
        "join", "acme/s1", "closed", part("c-2", now + 1, tenant="evil"), Terms(NAMES, 3600), now + 1
    )
    assert (again.added, again.parts["closed"].event_id) == (True, "c-1"), "kept, not counted"
    assert not again.counts("closed", "c-2")
    last = ledger.arrive("join", "acme/s1", "files", part("f-1", now + 2), Terms(NAMES, 3600), now + 2)
    assert (last.status, last.added, last.opened) == (JoinStatus.COMPLETE, True, now)
    assert last.parts["closed"] == part("c-1", now, tenant="acme")
    repeat = ledger.arrive("join", "acme/s1", "files", part("f-2", now + 3), Terms(NAMES, 3600), now + 3)
    assert (repeat.status, repeat.added, repeat.parts["files"].event_id, repeat.late_number) == (
        JoinStatus.COMPLETE,
        True,
        "f-1",
        1,
    ), "new content after the run: the window's first late arrival"
    assert ledger.joins(status=JoinStatus.OPEN) == []
    (window,) = ledger.joins(route="join", key="acme/s1")
    assert (window.status, sorted(window.parts)) == (JoinStatus.COMPLETE, ["closed", "files"])
    other = ledger.arrive("join", "globex/s1", "files", part("g-1", now), Terms(NAMES, 3600), now)
    assert (other.status, other.added) == (JoinStatus.OPEN, True), "another key, another window"


def test_a_closed_window_is_expired_once_and_a_late_part_opens_a_new_one(
    ledger: Ledger, ledger_clock: Time
) -> None:
    now = ledger_clock.now()
    ledger.arrive("join", "acme/s1", "closed", part("c-1", now), Terms(NAMES, 10), now)
    assert not ledger.expire("join", "acme/s1", now, now + 5), "not closed yet"
    late = ledger.arrive("join", "acme/s1", "files", part("f-1", now + 11), Terms(NAMES, 10), now + 11)
    assert (late.status, late.opened, list(late.parts)) == (JoinStatus.OPEN, now + 11, ["files"])
    windows = ledger.joins(route="join", key="acme/s1")
    assert [(w.opened, w.status, list(w.parts)) for w in windows] == [
        (now + 11, JoinStatus.OPEN, ["files"]),
        (now, JoinStatus.OPEN, ["closed"]),
    ], "the closed window is kept for reconcile to record"
    assert ledger.expire("join", "acme/s1", now, now + 11)
    assert not ledger.expire("join", "acme/s1", now, now + 12), "once"
    assert [w.status for w in ledger.joins(route="join", key="acme/s1")] == [
        JoinStatus.OPEN,
        JoinStatus.EXPIRED,
    ]
    assert [w.opened for w in ledger.joins(status=JoinStatus.OPEN)] == [now + 11]


def test_a_parts_redelivery_however_late_is_answered_by_the_window_that_holds_it(
    ledger: Ledger, ledger_clock: Time
) -> None:
    """The delivery that completed a window may die before it launched the run; its redelivery,
    after the window closed and a newer one opened, must still find the complete window."""
    now = ledger_clock.now()
    ledger.arrive("join", "acme/s1", "files", part("f-1", now), Terms(NAMES, 10), now)
    completing = ledger.arrive("join", "acme/s1", "closed", part("c-1", now + 5), Terms(NAMES, 10), now + 5)
    assert completing.status is JoinStatus.COMPLETE
    newer = ledger.arrive("join", "acme/s1", "closed", part("c-2", now + 20), Terms(NAMES, 10), now + 20)
    assert (newer.opened, newer.status) == (now + 20, JoinStatus.OPEN)
    again = ledger.arrive("join", "acme/s1", "closed", part("c-1", now + 30), Terms(NAMES, 10), now + 30)
    assert (again.opened, again.status, again.added) == (now, JoinStatus.COMPLETE, False)
    assert again.parts["closed"].event_id == "c-1"
    assert [w.opened for w in ledger.joins(route="join", key="acme/s1")] == [now + 20, now]
