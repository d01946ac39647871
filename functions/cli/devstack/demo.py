"""`kfp-trigger demo`: the whole trigger loop once, on the embedded default, with real parts.

It starts the dev stack, lands a day of synthetic survey responses (two CSV parts, then the
`_SUCCESS` marker) in the landing folder, waits for the kfp.local run to end and its result to
be published, and prints each step. Exit status 0 only if the run SUCCEEDED and its result
CloudEvent is in the results file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from functions import logs
from functions.adapters.jsonl_sink import JsonlSink
from functions.bootstrap import path_of
from functions.settings import Settings

if TYPE_CHECKING:
    from functions.service.ports import Services

BUCKET = "acme-survey-landing"
ROUTE = "survey-responses-landed"
COLUMNS = ["respondent_id", "q1", "q2", "q3", "q4", "q5", "tenure_months", "plan", "churned"]


def survey_csv(rows: int, seed: int) -> str:
    """Synthetic responses in which low satisfaction, short tenure and the basic plan churn."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for number in range(rows):
        answers = [rng.randint(1, 5) for _ in range(5)]
        tenure = rng.randint(1, 72)
        plan = rng.choice(["basic", "pro", "enterprise"])
        risk = 1.1 - 0.9 * sum(answers) / 25 - 0.006 * min(tenure, 60) + (0.15 if plan == "basic" else 0.0)
        churned = int(rng.random() < min(0.97, max(0.03, risk)))
        writer.writerow([f"{seed}-{number}", *answers, tenure, plan, churned])
    return out.getvalue()


def land(landing: Path, name: str, text: str) -> Path:
    """Write a file into the landing folder atomically, as an upload finalizes an object."""
    target = landing / BUCKET / name
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = landing / f".{target.name}.partial"
    scratch.write_text(text)
    os.replace(scratch, target)
    return target


def run_demo(settings: Settings, say: Callable[[str], None], timeout: float = 240.0) -> int:
    from functions import bootstrap
    from functions.cli.devstack.server import DevServer, every, start_background, wait_until
    from functions.cli.devstack.watcher import routed_buckets, watch_landing
    from functions.service import reconcile

    for folder in (settings.state_dir, settings.landing_dir):
        shutil.rmtree(folder, ignore_errors=True)
    settings.landing_dir.mkdir(parents=True)
    server = DevServer(port=0)
    settings = settings.replace(completion_url=f"{server.url}/handle_completion")
    say(f"1. embedded stack on {server.url}  (state: {settings.state_dir}, landing: {settings.landing_dir})")
    services = bootstrap.build(settings)
    bootstrap.install(services)  # the targets the server runs use these services
    server.start()
    stop = threading.Event()
    url, buckets = f"{server.url}/handle_event", routed_buckets(services.router.rules)
    start_background("watcher", lambda: watch_landing(settings.landing_dir, url, stop, buckets))
    start_background("reconciler", lambda: every(5.0, lambda: reconcile.reconcile(services), stop))
    logs.configure("text", logging.WARNING)  # the services set up the function's own logging
    try:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        prefix = f"responses/tenant-a/{day}"
        say(
            f"2. landing survey responses in gs://{BUCKET}/{prefix}/ (folder {settings.landing_dir / BUCKET})"
        )
        for part, seed in (("part-0000.csv", 1), ("part-0001.csv", 2)):
            land(settings.landing_dir, f"{prefix}/{part}", survey_csv(300, seed))
            say(f"   landed {part}")
        marker = f"{prefix}/_SUCCESS"
        land(settings.landing_dir, marker, "")
        say("   landed _SUCCESS")

        def published() -> bool:
            runs = services.store.runs(route=ROUTE)
            return bool(runs) and all(run.published_at is not None for run in runs)

        say("3. waiting for the run (kfp.local, one subprocess per run) ...")
        if not wait_until(published, timeout):
            say(f"FAILED: no published result within {timeout:.0f} s; see {settings.runs_dir}/*/runner.log")
            return 1
        return _report(services, settings, marker, say)
    finally:
        stop.set()
        server.stop()
        _stop_runs(services, say)


def _stop_runs(services: Services, say: Callable[[str], None]) -> None:
    """A demo cut short (Ctrl-C, a timeout) leaves no runner behind: each unfinished run is
    cancelled, which stops its runner's processes, and said."""
    for run in services.store.unfinished():
        if run.run_id is not None and run.backend in services.backends:
            services.backends[run.backend].cancel(run.run_id)
            say(f"   stopped {run.run_key}: its runner ({run.run_id}) is gone")


def _report(services: Services, settings: Settings, marker: str, say: Callable[[str], None]) -> int:
    run = services.store.runs(route=ROUTE)[0]
    trail = services.decisions.trail(run.event_id)
    say("\n== event ==")
    say(f"   {marker} → event {run.event_id}  key {trail[0].event_key if trail else '?'}")
    say("== decisions ==")
    for step in trail:
        say(f"   {step.outcome:<10} route={step.route} {step.reason}")
    say("== run ==")
    say(f"   {run.run_key}")
    say(f"   state={run.state} run_id={run.run_id} pipeline={run.pipeline}@{run.version[:12]}")
    say(f"   metrics={json.dumps(run.details.get('metrics', {}), sort_keys=True)}")
    results_file = path_of(settings.results_url)
    results = [r for r in JsonlSink(results_file).read() if r.get("subject") == run.run_key]
    say(f"== result CloudEvent ({results_file}) ==")
    for result in results:
        say("   " + json.dumps(result, indent=2, sort_keys=True).replace("\n", "\n   "))
    ok = run.state == "SUCCEEDED" and len(results) == 1
    say("\nDEMO OK" if ok else f"\nDEMO FAILED: state {run.state}, {len(results)} result(s)")
    return 0 if ok else 1
