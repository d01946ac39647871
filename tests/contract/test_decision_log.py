"""The `DecisionLog` contract: the trail by event id, event key or run key, and counts."""

from __future__ import annotations

import pytest

from functions.service.ledger import Ledger
from functions.service.records import DecisionRecord, KeptEvent, NewRun, Outcome
from tests.contract.conftest import Time

RUN = NewRun("route/bucket/name#1", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 1.0


def test_the_trail_by_run_key_event_key_or_event_id(ledger: Ledger) -> None:
    ledger.record(
        DecisionRecord(1.0, "event-1", "b/o#1", "t", Outcome.RUN, "route", "submitted", RUN.run_key)
    )
    ledger.record(DecisionRecord(2.0, "event-2", "b/o#1", "t", Outcome.DUPLICATE, "route", "", RUN.run_key))
    assert [d.outcome for d in ledger.trail(RUN.run_key)] == [Outcome.RUN, Outcome.DUPLICATE]
    assert [d.event_id for d in ledger.trail("b/o#1")] == ["event-1", "event-2"]
    assert [d.outcome for d in ledger.trail("event-2")] == [Outcome.DUPLICATE]
    assert ledger.trail("nobody") == []


def test_decision_counts(ledger: Ledger, ledger_clock: Time) -> None:
    for event_id in ("q-1", "q-2"):
        ledger.record(
            DecisionRecord(ledger_clock.now(), event_id, "", "t", Outcome.QUARANTINED, reason="bad")
        )
    ledger.record(DecisionRecord(ledger_clock.now(), "s-1", "", "t", Outcome.SKIPPED, reason="no match"))
    assert ledger.count_decisions(Outcome.QUARANTINED) == 2
    assert ledger.count_decisions(Outcome.FAILED) == 0


def test_quarantined_events_are_counted_once_each_and_only_while_they_are(
    ledger: Ledger, ledger_clock: Time
) -> None:
    """The overview's count: a replayed event quarantined again is still one event, and one a
    replay let through is not quarantined any more."""
    for event_id in ("q-1", "q-2", "q-3"):
        ledger.keep(KeptEvent(event_id, ledger_clock.now(), {"id": event_id}, "{}", "no route listens"))
    ledger.keep(KeptEvent("r-1", ledger_clock.now(), {"id": "r-1"}, "{}", ""))
    assert ledger.count_quarantined() == 3
    ledger.keep(KeptEvent("q-1", ledger_clock.now(), {"id": "q-1"}, "{}", "no route listens"))  # replayed
    ledger.keep(KeptEvent("q-2", ledger_clock.now(), {"id": "q-2"}, "{}", ""))  # a replay ran it
    assert ledger.count_quarantined() == 2


def test_recent_decisions_newest_first_of_a_route_or_all(ledger: Ledger) -> None:
    """What the status page's chart, latest decisions and routes read."""
    for at, route in ((1.0, "a"), (2.0, "b"), (3.0, "a"), (4.0, "")):
        ledger.record(DecisionRecord(at, f"e-{at:.0f}", "", "t", Outcome.SKIPPED, route, "r"))
    assert [d.at for d in ledger.recent(2.0)] == [4.0, 3.0, 2.0]
    assert [d.at for d in ledger.recent(0.0, route="a")] == [3.0, 1.0]
    assert [d.at for d in ledger.recent(0.0, limit=2)] == [4.0, 3.0]
    assert ledger.recent(5.0) == []
    assert [d.at for d in ledger.recent(0.0, before=3.0)] == [2.0, 1.0]  # the next page
    assert [d.at for d in ledger.recent(0.0, before=3.0, route="a")] == [1.0]


def test_find_by_the_start_of_an_event_key_or_run_key(ledger: Ledger) -> None:
    """The status page's search of an object: `bucket/name`, or any start of it."""
    ledger.record(DecisionRecord(1.0, "e-1", "bkt/in/a.csv#1", "t", Outcome.SKIPPED, "r", "no match"))
    ledger.record(DecisionRecord(2.0, "e-2", "bkt/in/b.csv#1", "t", Outcome.RUN, "r", "", "r/bkt/in/b.csv#1"))
    ledger.record(DecisionRecord(3.0, "e-3", "", "t", Outcome.COMPLETED, "r", "", "r/bkt/in/b.csv#1"))
    ledger.record(DecisionRecord(4.0, "e-4", "bkt/inbox#1", "t", Outcome.SKIPPED, "r", ""))
    assert [d.event_id for d in ledger.find("bkt/in/a.csv")] == ["e-1"]
    assert [d.event_id for d in ledger.find("bkt/in/")] == ["e-2", "e-1"]
    assert [d.event_id for d in ledger.find("r/bkt/in/b")] == ["e-3", "e-2"]
    capped = [d.at for d in ledger.find("bkt/in", limit=2)]  # which two: the ledger's pick
    assert len(capped) == 2
    assert capped == sorted(capped, reverse=True)
    assert ledger.find("bkt/out") == []


def test_kept_events_are_found_by_id_and_the_quarantined_by_time(ledger: Ledger) -> None:
    """What `kfp-trigger replay` reads; the latest keep of an event wins."""
    attributes = {"id": "e-1", "type": "t", "source": "//s", "specversion": "1.0"}
    ledger.keep(KeptEvent("e-1", 10.0, attributes, '{"a": "ü"}', "no route listens"))
    ledger.keep(KeptEvent("e-2", 20.0, {**attributes, "id": "e-2"}, "{}", "bad signature"))
    ledger.keep(KeptEvent("e-3", 30.0, {**attributes, "id": "e-3"}, "{}", ""))
    assert ledger.kept("e-1") == KeptEvent("e-1", 10.0, attributes, '{"a": "ü"}', "no route listens")
    assert ledger.kept("nobody") is None
    assert [e.event_id for e in ledger.quarantined(0.0)] == ["e-1", "e-2"]
    assert [e.event_id for e in ledger.quarantined(15.0)] == ["e-2"]
    ledger.keep(KeptEvent("e-1", 40.0, attributes, '{"a": "ü"}', ""))  # replayed, and routed now
    assert [e.event_id for e in ledger.quarantined(0.0)] == ["e-2"]


def test_every_event_kept_since_a_time_oldest_first_page_after_page(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`routes plan` reads them all: pages of 2 here, with events kept at the same time on both
    sides of a page's end, each read once."""
    from functions.adapters.firestore import events as firestore_events
    from functions.adapters.sqlite import events as sqlite_events

    monkeypatch.setattr(sqlite_events, "PAGE", 2)
    monkeypatch.setattr(firestore_events, "PAGE", 2)
    for number in range(9):
        ledger.keep(KeptEvent(f"e-{number}", 10.0 + number // 3, {"id": f"e-{number}"}, "{}", ""))
    found = list(ledger.kept_since(11.0))
    assert sorted(event.event_id for event in found) == [f"e-{number}" for number in range(3, 9)]
    assert [event.at for event in found] == [11.0] * 3 + [12.0] * 3
    ledger.keep(KeptEvent("e-0", 50.0, {"id": "e-0"}, "{}", ""))  # kept again by a replay: read once, then
    assert [event.event_id for event in ledger.kept_since(0.0)][-1] == "e-0"
    assert len(list(ledger.kept_since(0.0))) == 9
    assert list(ledger.kept_since(51.0)) == []
