"""`kfp-trigger partitions` on a large SQLite ledger (issue 36): how fast a route's matrix is
drawn — the use case, the text the CLI prints and the status page's /partitions.

A route `daily` with `partition: "{tenant}/{date}"`: `--tenants` tenants (default 50) x `--days`
days (default 30), each partition's run in the ledger (most succeeded, some failed, some
reran, today's running, a few missing), and `--decisions` decisions in all (default 100,000:
each run's own, redeliveries, other routes' traffic, and newer data that makes some partitions
stale), written in bulk straight into the ledger's tables (the bench measures reading). Each
view is drawn `--repeat` times: the table prints the median and the slowest. The matrix must be
drawn in under 1 s.

    python -m bench.partitions [--tenants 50] [--days 30] [--decisions 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sqlite3
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from bench import timed
from functions import bootstrap
from functions.adapters.sqlite.ledger import SqliteLedger
from functions.cli.partitions import echo_matrix
from functions.service.ledger import Ledger
from functions.service.partitions import partitions
from functions.settings import Settings
from functions.statuspage import render

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
BOUND_MS = 1000.0
ROUTES = """version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: daily
    when: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: echo, run_key: "{route}/{tenant}/{date}"}
    partition: "{tenant}/{date}"
  - name: other
    when: {storage: {bucket: other}}
    run: {pipeline: echo}
"""
RUN = "google.cloud.storage.object.v1.finalized"


def fill(path: Path, tenants: int, days: int, decisions: int) -> int:
    """The runs of every partition (one in 40 missing, one in 15 failed, one in 20 reran, today's
    running), their decisions, and other decisions up to `decisions`; how many partitions."""
    dates = [(datetime.fromtimestamp(NOW, UTC) - timedelta(days=back)).date() for back in range(days)]
    runs, notes = [], []
    for number, (tenant, day) in enumerate((t, d) for t in range(tenants) for d in dates):
        if number % 40 == 7:
            continue  # missing
        partition = f"t{tenant:02}/{day.isoformat()}"
        key, at = f"daily/{partition}", datetime(day.year, day.month, day.day, 6, tzinfo=UTC).timestamp()
        state = "SUBMITTED" if day == dates[0] else "FAILED" if number % 15 == 3 else "SUCCEEDED"
        runs.append((key, f"e-{number}", state, at, partition))
        notes.append((at, f"e-{number}", f"landing/{partition}/_SUCCESS#1", "run", key))
        if number % 20 == 11:  # reran: the rerun is the partition's latest
            runs.append((f"{key}~rerun-1", f"e-{number}", "SUCCEEDED", at + 3600, partition))
        if number % 33 == 5:  # newer data after the run: stale
            notes.append((at + 60, f"n-{number}", f"landing/{partition}/_SUCCESS#2", "duplicate", key))
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO runs (run_key, route, pipeline, version, backend, params, event_id, state,"
            " attempt, lease_until, created_at, updated_at, partition)"
            " VALUES (?, 'daily', 'echo', 'v', 'local', '{}', ?, ?, 1, 0, ?, ?, ?)",
            ((key, event, state, at, at, partition) for key, event, state, at, partition in runs),
        )
        rest = max(decisions - len(notes), 0)
        span = days * 86400.0
        notes += [  # redeliveries of the route's events, and the other route's traffic
            (NOW - span * n / max(rest, 1), f"x-{n}", f"landing/x/{n}#1", "duplicate", "")
            if n % 2
            else (NOW - span * n / max(rest, 1), f"o-{n}", f"other/{n}#1", "run", f"other/{n}")
            for n in range(rest)
        ]
        db.executemany(
            "INSERT INTO decisions (at, event_id, event_key, event_type, outcome, route, reason, run_key)"
            f" VALUES (?, ?, ?, '{RUN}', ?, 'daily', 'a reason', ?)",
            notes,
        )
    return tenants * days


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "routes.yaml").write_text(ROUTES)
        settings = Settings(routes=Path(scratch) / "routes.yaml", state_dir=Path(scratch), auth="none")
        services = bootstrap.build(settings)
        services = type(services)(**{**services.__dict__, "clock": lambda: NOW})
        ledger = cast(Ledger, SqliteLedger(Path(scratch) / "ledger.sqlite3"))
        cells = fill(Path(scratch) / "ledger.sqlite3", options.tenants, options.days, options.decisions)
        rule = services.router.by_name["daily"]
        found = partitions(ledger, rule, NOW, options.days)
        assert len(found.rows) * len(found.days) == cells, (len(found.rows), len(found.days))
        counts = found.counts()

        def text() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                echo_matrix(partitions(ledger, rule, NOW, options.days))

        views = {
            "the use case (`partitions`)": lambda: partitions(ledger, rule, NOW, options.days),
            "the CLI's matrix (text)": text,
            "the status page `/partitions`": lambda: render(
                services, "/partitions", {"route": "daily", "days": str(options.days)}
            ),
        }
        rows = [(name, timed(view, options.repeat)) for name, view in views.items()]
    shown = ", ".join(f"{count:,} {state}" for state, count in sorted(counts.items()))
    print(
        f"\nPartitions: a {options.tenants}-tenant x {options.days}-day matrix ({shown}) from"
        f" {options.decisions:,} decisions in the SQLite ledger, each view drawn {options.repeat} times"
        " (bench/partitions.py)\n"
    )
    print("| view | median | slowest |")
    print("|---|---:|---:|")
    for name, spent in rows:
        print(f"| {name} | {statistics.median(spent):.1f} ms | {max(spent):.1f} ms |")
    matrix = statistics.median(rows[1][1])
    verdict = "within" if matrix < BOUND_MS else "OVER"
    print(f"\nmatrix median {matrix:.1f} ms: {verdict} the {BOUND_MS:.0f} ms bound")
    print(json.dumps({"matrix_ms": round(matrix, 1)}))


if __name__ == "__main__":
    main()
