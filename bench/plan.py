"""`kfp-trigger routes plan` on a SQLite ledger of kept events (issue 37): how long a filter
change takes to be planned against them, whether its counts are exact, and whether the ledger
file is byte for byte as it was.

`--events` kept events (default 10,000) over the last 6 days, written in bulk into the ledger's
table: objects landing for `--tenants` tenants (default 20), product messages, and objects in a
bucket no route reads. The change narrows the `daily` route to the first half of the tenants,
renames a message route's run key, and adds a route; the bench counts what each route must
gain, lose and change from the events it wrote, and compares. The command runs as a user runs
it, in its own process (`--repeat` times, default 3): the table prints the median and slowest.
The plan must take under 30 s.

    python -m bench.plan [--events 10000] [--tenants 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from functions.bootstrap import ledger_from
from tests.support import team_project

BOUND_S = 30.0
ROOT = Path(__file__).resolve().parent.parent
ROUTES = """version: 1
pipelines:
  echo: {source: pipelines/echo.py:echo_pipeline}
routes:
  - name: daily
    when: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"%s}}
    run: {pipeline: echo, params: {message: "{tenant}"}}
  - name: closed
    when: {pubsub: {topic: product-events, data: {type: survey.closed}}}
    run: {pipeline: echo, run_key: "%s"}
%s"""
OLD = ROUTES % ("", "{route}/{event.key}", "")
NEW_AUDIT = """  - name: audit
    when: {storage: {bucket: landing, object: "**/_SUCCESS"}}
    run: {pipeline: echo}
"""
STORAGE = "google.cloud.storage.object.v1.finalized"
PUBSUB = "google.cloud.pubsub.topic.v1.messagePublished"


def new_routes(tenants: int) -> str:
    kept = ", ".join(f"{{prefix: t{tenant:02}/}}" for tenant in range(tenants // 2))
    return ROUTES % (f", name: [{kept}]", "{route}/{data.tenant}", NEW_AUDIT)


def fill(path: Path, events: int, tenants: int, now: float) -> dict[str, dict[str, int]]:
    """The kept events, and what the plan must report per route: {route: {old, new, gained, lost,
    changed}}."""
    rows, landed, closed = [], [0] * tenants, 0
    for number in range(events):
        at = now - 6 * 86400 * (events - number) / events
        kind = number % 5
        if kind == 4:  # an object no route reads
            attributes, data = storage(number, "elsewhere", f"x/{number}.csv")
        elif kind == 3:  # a product message
            closed += 1
            attributes, data = message(number, f"t{number % tenants:02}")
        else:
            tenant = number % tenants
            landed[tenant] += 1
            attributes, data = storage(number, "landing", f"t{tenant:02}/d{number}/_SUCCESS")
        rows.append((attributes["id"], at, json.dumps(attributes), json.dumps(data), ""))
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO events (event_id, at, attributes, data, reason) VALUES (?, ?, ?, ?, ?)", rows
        )
    everyone, half = sum(landed), sum(landed[: tenants // 2])
    return {
        "daily": {"old": everyone, "new": half, "gained": 0, "lost": everyone - half, "changed": 0},
        "closed": {"old": closed, "new": closed, "gained": 0, "lost": 0, "changed": closed},
        "audit": {"old": 0, "new": everyone, "gained": everyone, "lost": 0, "changed": 0},
    }


def message(number: int, tenant: str) -> tuple[dict[str, str], dict[str, object]]:
    source = "//pubsub.googleapis.com/projects/p/topics/product-events"
    attributes = {"specversion": "1.0", "id": f"m-{number}", "type": PUBSUB, "source": source}
    payload = json.dumps({"type": "survey.closed", "tenant": tenant}).encode()
    published = {
        "data": base64.b64encode(payload).decode(),
        "messageId": f"m-{number}",
        "publishTime": "2026-12-01T00:00:00Z",
    }
    return attributes, {"message": published, "subscription": "projects/p/subscriptions/s"}


def storage(number: int, bucket: str, name: str) -> tuple[dict[str, str], dict[str, object]]:
    attributes = {
        "specversion": "1.0",
        "id": f"s-{number}",
        "type": STORAGE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
    }
    return attributes, {"bucket": bucket, "name": name, "generation": "1", "size": "10"}


def planned(scratch: Path, old: Path, new: Path) -> tuple[float, dict[str, object]]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KFP_TRIGGER_")}
    env |= {"KFP_TRIGGER_STATE_DIR": str(scratch), "KFP_TRIGGER_AUTH": "none", "PYTHONPATH": str(ROOT)}
    command = [str(Path(sys.executable).parent / "kfp-trigger"), "routes", "plan", str(old), str(new)]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--since", "7d", "--json"], capture_output=True, text=True, env=env, check=True
    )
    return time.perf_counter() - started, json.loads(done.stdout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        ledger = scratch / "ledger.sqlite3"
        ledger_from(f"sqlite:///{ledger}")  # the schema
        expected = fill(ledger, options.events, options.tenants, time.time())
        old, new = (
            team_project(scratch / "base", OLD),
            team_project(scratch / "change", new_routes(options.tenants)),
        )
        before = digest(ledger)
        spent: list[float] = []
        report: dict[str, object] = {}
        for _ in range(options.repeat):
            seconds, report = planned(scratch, old, new)
            spent.append(seconds)
        unchanged = digest(ledger) == before
    counted = ("old", "new", "gained", "lost", "changed")
    routes = report["routes"]
    assert isinstance(routes, list)
    got = {route["route"]: {name: route[name] for name in counted} for route in routes}
    exact = got == expected
    print(
        f"\nroutes plan: {options.events:,} kept events in a SQLite ledger, a filter narrowed to"
        f" {options.tenants // 2} of {options.tenants} tenants, a run key renamed, a route added;"
        f" the command run {options.repeat} times (bench/plan.py)\n"
    )
    print("| route | old | new | gained | lost | changed |")
    print("|---|---:|---:|---:|---:|---:|")
    for route, counts in sorted(got.items()):
        print(
            f"| {route} | "
            + " | ".join(f"{counts[k]:,}" for k in ("old", "new", "gained", "lost", "changed"))
            + " |"
        )
    median = statistics.median(spent)
    print("\n| the command, median | slowest | counts | ledger file |\n|---:|---:|---|---|")
    print(
        f"| {median:.1f} s | {max(spent):.1f} s | {'exact' if exact else 'WRONG'} |"
        f" {'byte-identical' if unchanged else 'CHANGED'} |"
    )
    verdict = "within" if median < BOUND_S else "OVER"
    print(f"\nplan median {median:.1f} s: {verdict} the {BOUND_S:.0f} s bound")
    print(json.dumps({"plan_s": round(median, 1), "exact": exact, "unchanged": unchanged}))


if __name__ == "__main__":
    main()
