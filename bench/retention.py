"""Retention: the SQLite ledger stays bounded under `kfp-trigger prune` (issue 14 item 10).

A simulated month of traffic through `handle_event` and the reconciler on the SQLite ledger,
with simulated time: `--per-day` events a day (7 in 10 start a run that ends and is published
the same day, 2 are skipped by routing, 1 is quarantined), and once a day the ledger is pruned
of what is older than `--keep` (default 1 day; `kfp-trigger prune --older-than 1d` does the
same). The table prints the ledger's rows (kept events: those `replay` can send again) and file
size as the days pass: the size on day 30 stays that of the first days, because SQLite reuses
the pages pruning freed.

    python -m bench.retention [--days 30] [--per-day 10000] [--keep 1d]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from bench import quiet
from events.envelope import parse_http
from events.schema_types import seconds
from functions import bootstrap
from functions.adapters.sqlite.ledger import SqliteLedger
from functions.service import completion, intake
from functions.settings import Settings
from pipelines.backend import RunState
from tests.support import ROUTES, storage_event
from tests.support.fakes import RecordingBackend

DAY = 86400.0
START = 1_800_000_000.0 // DAY * DAY  # a UTC midnight
TABLES = ("runs", "decisions", "marks", "places", "batch_members", "events")


class Discard:
    """A sink that delivers nowhere: the bench measures the ledger, not the sinks."""

    def publish(self, document: Mapping[str, object]) -> None:
        return None


def event(number: int) -> tuple[dict[str, str], bytes]:
    kind = number % 10
    if kind in (7, 8):  # a route listens to the bucket, none matches the name: a recorded skip
        return storage_event("some-bucket", f"elsewhere/part-{number}.csv", event_id=f"e-{number}")
    if kind == 9:  # nobody listens to this bucket: quarantined
        return storage_event("nobody-listens", f"part-{number}.csv", event_id=f"e-{number}")
    return storage_event(
        "some-bucket", f"folder/part-{number}.csv", generation=number, event_id=f"e-{number}"
    )


def measure(path: Path) -> dict[str, int]:
    """Rows per table and the file's bytes (after a WAL checkpoint, so the file holds it all)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES}
    return rows | {"bytes": path.stat().st_size}


def simulate(days: int, per_day: int, keep: float, report: list[int]) -> list[dict[str, int]]:
    """Run the month; the measurements of the days in `report` (1-based)."""
    with quiet():  # quarantines are expected here
        return _simulate(days, per_day, keep, report)


def _simulate(days: int, per_day: int, keep: float, report: list[int]) -> list[dict[str, int]]:
    measured = []
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(routes=ROUTES, state_dir=Path(scratch), auth="none", reconcile_grace_seconds=0)
        built = bootstrap.build(settings)
        ledger = built.store
        assert isinstance(ledger, SqliteLedger)
        engine = RecordingBackend()
        now = [START]
        services = replace(
            built, backends={"local": engine}, results=Discard(), quarantine=Discard(), clock=lambda: now[0]
        )
        number = 0
        for day in range(1, days + 1):
            for _ in range(per_day):
                now[0] += DAY / per_day / 2  # the traffic comes in the first half of the day
                headers, body = event(number)
                intake.handle(services, *parse_http(headers, body), body)
                number += 1
            for run_id in engine.states:  # every run of the day ends
                engine.states[run_id] = RunState.SUCCEEDED
            completion.reconcile(services)
            engine.states.clear()
            now[0] = START + day * DAY - 60  # a minute before midnight: the daily prune
            ledger.prune(now[0] - keep)
            if day in report:
                measured.append({"day": day} | measure(ledger.path))
            now[0] = START + day * DAY
    return measured


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=10_000)
    parser.add_argument("--keep", default="1d", help="prune what is older than this, daily")
    options = parser.parse_args(argv)
    keep = float(seconds(options.keep))  # type: ignore[arg-type]
    days = sorted({1, 2, 7, 14, options.days} & set(range(1, options.days + 1)))
    started = time.perf_counter()
    rows = simulate(options.days, options.per_day, keep, days)
    print(
        f"\nRetention: {options.days} days x {options.per_day:,} events/day on the SQLite ledger,"
        f" pruned daily of what is older than {options.keep} (bench/retention.py,"
        f" {time.perf_counter() - started:.0f} s)\n"
    )
    print("| day | runs | decisions | marks | places | kept events | ledger file |")
    print("|----:|-----:|----------:|------:|-------:|------------:|------------:|")
    for row in rows:
        print(
            f"| {row['day']} | {row['runs']:,} | {row['decisions']:,} | {row['marks']:,} | {row['places']:,}"
            f" | {row['events']:,} | {row['bytes'] / 1e6:.1f} MB |"
        )


if __name__ == "__main__":
    main()
