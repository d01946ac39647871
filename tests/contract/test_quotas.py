"""The `Quotas` contract: limit places (also under a race of processes), flags, marks."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from functions.bootstrap import ledger_from
from functions.service.ledger import Ledger
from functions.service.records import NewRun
from tests.contract.conftest import Time

RUN = NewRun("route/bucket/name#1", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 1.0


def test_a_limit_of_n_places_is_never_held_n_plus_one_times(ledger: Ledger, ledger_clock: Time) -> None:
    assert ledger.hold("active:r", 2, "a", ledger_clock.now())
    assert ledger.hold("active:r", 2, "a", ledger_clock.now()), "holding twice is one place"
    assert ledger.hold("active:r", 2, "b", ledger_clock.now())
    assert not ledger.hold("active:r", 2, "c", ledger_clock.now())
    assert ledger.hold("active:other", 2, "c", ledger_clock.now()), "scopes are separate"
    ledger.let_go("active:r", "a")
    ledger.let_go("active:r", "nobody")
    assert ledger.hold("active:r", 2, "c", ledger_clock.now())
    assert not ledger.hold("active:r", 2, "a", ledger_clock.now())


@pytest.mark.slow  # processes racing: the full suite runs it, make check does not
def test_places_under_a_race_from_many_processes(ledger_url: str) -> None:
    held = hold_race(ledger_url, 8, limit=3)
    assert held.count(True) == 3


def _hold(url: str, holder: str, limit: int, start: Any, results: Any) -> None:
    start.wait()
    results.put(ledger_from(url).hold("daily:2026-11-27", limit, holder, time.time()))


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
    assert ledger.raise_mark("b/o", 5, 0.0) == 5
    assert ledger.raise_mark("b/o", 3, 0.0) == 5, "an older generation does not lower the mark"
    assert ledger.raise_mark("b/o", 7, 0.0) == 7
    assert ledger.raise_mark("b/other", 1, 0.0) == 1
