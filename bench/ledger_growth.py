"""Cost as work grows (issue 19): the per-event cost of `handle_event` with a large SQLite ledger
against the same with an empty one, measured in the same run.

The service (decode, route, generation mark, claim, submit to a recording backend, decisions,
the kept event) handles `--events` new finalize events in process, first on an empty ledger,
then on one holding `--runs` runs and `--decisions` decisions written in bulk (as
bench/status_page.py fills it). Target: the large ledger's cost ≤ 1.1 x the empty one's.

    python -m bench.ledger_growth [--runs 100000] [--decisions 1000000] [--events 2000]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import quiet
from bench.status_page import fill
from functions import bootstrap
from functions.service import intake
from functions.settings import Settings
from tests.support import ROUTES, call, storage_event
from tests.support.fakes import RecordingBackend

BOUND = 1.1
ROUNDS = 3


def per_event_us(runs: int, decisions: int, events: int) -> list[float]:
    """Microseconds per new event, one figure per round, on a ledger filled with so much."""
    with quiet(logging.WARNING), tempfile.TemporaryDirectory() as scratch:
        settings = Settings(routes=ROUTES, state_dir=Path(scratch), auth="none")
        services = replace(bootstrap.build(settings), backends={"local": RecordingBackend()})
        if runs or decisions:
            fill(Path(scratch) / "ledger.sqlite3", list(services.router.by_name), runs, decisions)
        spent = []
        for round_ in range(ROUNDS):
            deliveries = [
                storage_event("some-bucket", f"folder/g{round_}-{n}.csv", event_id=f"g{round_}-{n}")
                for n in range(events)
            ]
            started = time.perf_counter()
            for headers, body in deliveries:
                call(intake.handle, services, headers, body)
            spent.append((time.perf_counter() - started) / events * 1e6)
        return spent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000)
    options = parser.parse_args(argv)
    empty = per_event_us(0, 0, options.events)
    large = per_event_us(options.runs, options.decisions, options.events)
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
