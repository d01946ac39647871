"""Cost as work grows (issue 19): the per-event cost of `handle_event` with a large SQLite ledger
against the same with an empty one, measured in the same run.

The service (decode, route, generation mark, claim, submit to a recording backend, decisions,
the kept event) handles `--events` new finalize events in process on an empty ledger and on one
holding `--runs` runs and `--decisions` decisions written in bulk (as bench/status_page.py fills
it), the two in turn each round. Target: the large ledger's cost ≤ 1.1 x the empty one's.

    python -m bench.ledger_growth [--runs 100000] [--decisions 1000000] [--events 2000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench import quiet
from bench.status_page import fill
from functions import bootstrap
from functions.service import intake
from functions.service.ports import Services
from functions.settings import Settings
from tests.support import ROUTES, call, storage_event
from tests.support.fakes import RecordingBackend

BOUND = 1.1
ROUNDS = 3


@contextmanager
def serving(runs: int, decisions: int) -> Iterator[Services]:
    """The service on a SQLite ledger filled with so many runs and decisions."""
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(routes=ROUTES, state_dir=Path(scratch), auth="none")
        services = replace(bootstrap.build(settings), backends={"local": RecordingBackend()})
        if runs or decisions:
            fill(Path(scratch) / "ledger.sqlite3", list(services.router.by_name), runs, decisions)
        yield services


def per_event_us(services: Services, name: str, events: int) -> float:
    """Microseconds per new event, `events` of them named after `name`."""
    deliveries = [
        storage_event("some-bucket", f"folder/{name}-{n}.csv", event_id=f"{name}-{n}") for n in range(events)
    ]
    started = time.perf_counter()
    for headers, body in deliveries:
        call(intake.handle, services, headers, body)
    return (time.perf_counter() - started) / events * 1e6


def measure(runs: int, decisions: int, events: int) -> tuple[list[float], list[float]]:
    """(empty, large): µs per event, one figure per round, the two ledgers in turn each round so
    that a busy moment hurts both alike."""
    empty: list[float] = []
    large: list[float] = []
    with quiet(logging.WARNING), serving(0, 0) as bare, serving(runs, decisions) as full:
        for round_ in range(ROUNDS):
            empty.append(per_event_us(bare, f"e{round_}", events))
            large.append(per_event_us(full, f"l{round_}", events))
    return empty, large


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000)
    options = parser.parse_args(argv)
    empty, large = measure(options.runs, options.decisions, options.events)
    ratio = statistics.median(large) / statistics.median(empty)
    print(
        f"\nCost as the ledger grows (bench/ledger_growth.py): {options.events:,} new finalize events"
        f" through handle_event in process, SQLite ledger, median of {ROUNDS} rounds (min-max)\n"
    )
    print("| ledger | µs per event |")
    print("|---|---:|")
    for name, spent in (("empty", empty), (f"{options.runs:,} runs, {options.decisions:,} decisions", large)):
        print(f"| {name} | {statistics.median(spent):,.0f} ({min(spent):,.0f}-{max(spent):,.0f}) |")
    verdict = "pass" if ratio <= BOUND else "**miss**"
    print(f"\nlarge / empty = {ratio:.2f} x (target ≤ {BOUND} x): {verdict}")


if __name__ == "__main__":
    main()
