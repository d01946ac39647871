"""The `RunQueue` settle contract: the items of one run key gather into one batch until they
stop arriving, on every store; 8 processes racing make one batch."""

from __future__ import annotations

import multiprocessing
import random
import time
from dataclasses import replace

import pytest

from events.errors import TransientError
from functions.bootstrap import ledger_from
from functions.service.ledger import Ledger
from functions.service.records import ClaimOutcome, NewRun, SettleHead, SettleWindow
from pipelines.backend import RunState
from tests.contract.conftest import Time

RUN = NewRun("survey/2026-12-07", "survey", "pipeline", "v1", "local", {"n": 1}, "event-1")
WINDOW = SettleWindow(quiet=120.0, max_wait=1800.0, max_items=3)


def settled(ledger: Ledger, name: str, now: float, window: SettleWindow = WINDOW) -> SettleHead:
    head = ledger.settle(RUN, window, f"gs://b/{name}", f"b/{name}#1", now)
    assert isinstance(head, SettleHead), head
    return head


def test_items_gather_in_one_batch_put_off_by_each_until_it_is_full(
    ledger: Ledger, ledger_clock: Time
) -> None:
    now = ledger_clock.now()
    first = settled(ledger, "a.csv", now)
    assert (first.number, first.run_key, first.items, first.due) == (
        1,
        f"{RUN.run_key}~settle-1",
        1,
        now + 120,
    )
    second = settled(ledger, "b.csv", now + 30)
    assert (second.run_key, second.items, second.opened, second.due) == (first.run_key, 2, now, now + 150)
    record = ledger.get(first.run_key)
    assert record is not None
    assert (record.state, record.not_before, record.params) == (RunState.QUEUED, now + 150, {"n": 1})
    assert record.details["queued"].startswith("settling until "), record.details
    assert ledger.settle(RUN, WINDOW, "gs://b/a.csv", "b/a.csv#1", now + 40) == first.run_key, (
        "a redelivery stays in the batch that holds it"
    )
    full = settled(ledger, "c.csv", now + 50)
    assert (full.items, full.due) == (3, now + 50), "a full batch is due at once"
    assert ledger.settling(RUN.route, RUN.run_key) == full
    after = settled(ledger, "d.csv", now + 60)
    assert (after.number, after.run_key, after.items) == (2, f"{RUN.run_key}~settle-2", 1)
    assert ledger.members(first.run_key) == ["gs://b/a.csv", "gs://b/b.csv", "gs://b/c.csv"]
    assert ledger.members(after.run_key) == ["gs://b/d.csv"]


def test_a_busy_key_starts_at_max_wait_after_its_first_item(ledger: Ledger, ledger_clock: Time) -> None:
    now = ledger_clock.now()
    window = replace(WINDOW, max_items=1000)
    for minute in range(40):
        head = settled(ledger, f"{minute}.csv", now + 60 * minute, window)
        if head.number > 1:
            break
    assert head.number == 1, "every item in time joins the first batch"
    assert head.due == now + 1800, "never past max_wait after its first item"


def test_an_item_after_its_batch_was_taken_opens_the_next(ledger: Ledger, ledger_clock: Time) -> None:
    now = ledger_clock.now()
    first = settled(ledger, "a.csv", now)
    assert ledger.take(first.run_key, now + 200, 60).outcome is ClaimOutcome.WON
    second = settled(ledger, "b.csv", now + 201)
    assert (second.number, second.items, second.opened) == (2, 1, now + 201)
    assert ledger.members(first.run_key) == ["gs://b/a.csv"]
    assert [run.run_key for run in ledger.queued(now + 400)] == [second.run_key]


def _settle_in_a_process(url: str, number: int, start, results) -> None:  # type: ignore[no-untyped-def]
    """One delivery, redelivered after a random pause as the platform does (with backoff) while
    the ledger answers transiently. The pause matters on the emulator: parallel transactions on one
    document can all time out there, retried in step forever (firebase/firebase-tools#6758, "within
    expectations for the emulator"); Firestore itself keeps a retried transaction's place in line."""
    ledger = ledger_from(url)
    start.wait()
    window = SettleWindow(quiet=600.0, max_wait=3600.0, max_items=1000)
    deadline = time.monotonic() + 100
    while time.monotonic() < deadline:
        try:
            head = ledger.settle(RUN, window, f"gs://b/{number}.csv", f"b/{number}.csv#1", time.time())
        except TransientError:
            time.sleep(random.uniform(0, 1))
            continue
        results.put(head.run_key if isinstance(head, SettleHead) else f"held by {head}")
        return
    results.put(f"process {number} still contended after 100 s")


@pytest.mark.slow  # processes racing: the full suite runs it, make check does not
def test_eight_processes_settling_one_key_make_one_batch(ledger_url: str) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_settle_in_a_process, args=(ledger_url, number, start, results))
        for number in range(8)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(timeout=120)
    keys = {results.get(timeout=5) for _ in processes}
    assert keys == {f"{RUN.run_key}~settle-1"}
    ledger = ledger_from(ledger_url)
    assert len(ledger.members(f"{RUN.run_key}~settle-1")) == 8
    head = ledger.settling(RUN.route, RUN.run_key)
    assert head is not None
    assert head.items == 8
    assert [run.run_key for run in ledger.runs(route=RUN.route)] == [f"{RUN.run_key}~settle-1"]
