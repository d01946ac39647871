"""The status page on a large SQLite ledger (issue 18): how fast each page answers.

A ledger of `--runs` runs (default 100,000) over the test routes, in every state, and `--decisions`
decisions (default 1,000,000: one per event, the last hour's share as busy as the rest), written
in bulk straight into the ledger's tables (the bench measures reading, not writing). Then each page
is rendered in-process, as the `status_page` target does, `--repeat` times: the table prints the
median and the slowest. The overview must answer in under 200 ms.

    python -m bench.status_page [--runs 100000] [--decisions 1000000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bench import timed
from functions import bootstrap
from functions.service.records import LEDGER_STATES
from functions.settings import Settings
from functions.statuspage import render
from tests.support import ROUTES

NOW = 1_800_000_000.0
SPAN = 30 * 86400.0  # the decisions spread over the last 30 days
OUTCOMES = ("run", "duplicate", "skipped", "completed", "quarantined", "queued")
BOUND_MS = 200.0


def fill(path: Path, routes: list[str], runs: int, decisions: int) -> None:
    """`runs` runs and `decisions` decisions, spread over routes, states and the last 30 days."""
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO runs (run_key, route, pipeline, version, backend, params, event_id, state,"
            " attempt, lease_until, created_at, updated_at)"
            " VALUES (?, ?, 'echo', 'v', 'local', '{}', ?, ?, 1, 0, ?, ?)",
            (
                (
                    f"{routes[n % len(routes)]}/bucket/object-{n}#1",
                    routes[n % len(routes)],
                    f"e-{n}",
                    LEDGER_STATES[n % len(LEDGER_STATES)].value,
                    NOW - SPAN * n / runs,
                    NOW - SPAN * n / runs,
                )
                for n in range(runs)
            ),
        )
        db.executemany(
            "INSERT INTO decisions (at, event_id, event_key, event_type, outcome, route, reason, run_key)"
            " VALUES (?, ?, ?, 'google.cloud.storage.object.v1.finalized', ?, ?, ?, ?)",
            (
                (
                    NOW - SPAN * n / decisions,
                    f"e-{n}",
                    f"bucket/object-{n}#1",
                    OUTCOMES[n % len(OUTCOMES)],
                    routes[n % len(routes)],
                    "a reason",
                    f"{routes[n % len(routes)]}/bucket/object-{n}#1",
                )
                for n in range(decisions)
            ),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(routes=ROUTES, state_dir=Path(scratch), auth="none")
        services = bootstrap.build(settings)
        services = type(services)(**{**services.__dict__, "clock": lambda: NOW})
        routes = list(services.router.by_name)
        started = time.perf_counter()
        fill(Path(scratch) / "ledger.sqlite3", routes, options.runs, options.decisions)
        filled = time.perf_counter() - started
        middle = options.decisions // 2
        run_key = f"{routes[middle % len(routes)]}/bucket/object-{middle}#1"
        pages = {  # each page, and what it must show (so that a fast answer is a right one)
            "overview `/`": ("/", {}, "Runs by route and state"),
            "routes `/routes`": ("/routes", {}, routes[-1]),
            "a run's story `/story`": ("/story", {"id": run_key}, f"e-{middle}"),
            "search an object `/search`": ("/search", {"q": f"bucket/object-{middle}"}, f"e-{middle}"),
        }
        rows = []
        for name, (path, query, shown) in pages.items():
            page = render(services, path, query)
            assert page.status == 200, (name, page.status)
            assert shown in page.html, (name, shown)
            spent = timed(lambda path=path, query=query: render(services, path, query), options.repeat)
            rows.append((name, statistics.median(spent), max(spent)))
    print(
        f"\nStatus page: {options.runs:,} runs and {options.decisions:,} decisions in the SQLite ledger"
        f" (filled in {filled:.0f} s), each page rendered {options.repeat} times (bench/status_page.py)\n"
    )
    print("| page | median | slowest |")
    print("|---|---:|---:|")
    for name, median, slowest in rows:
        print(f"| {name} | {median:.1f} ms | {slowest:.1f} ms |")
    overview = rows[0][1]
    verdict = "within" if overview < BOUND_MS else "OVER"
    print(f"\noverview median {overview:.1f} ms: {verdict} the {BOUND_MS:.0f} ms bound")
    print(json.dumps({"overview_ms": round(overview, 1)}))


if __name__ == "__main__":
    main()
