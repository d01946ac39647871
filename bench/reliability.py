"""Reliability under duplicates, crashes and faults: what goes in, what runs, what comes out.

A seeded simulation of the platform around `handle_event`, `handle_completion` and the
reconciler, in one process, on the SQLite ledger, with simulated time:

- every event is delivered until it is acknowledged (2xx), with backoff, as Pub/Sub push and
  Eventarc do; some events are delivered twice at once, and after acknowledgement a share is
  delivered again (duplicates);
- at every crash point (functions/service/crashpoints.py) the "instance" dies at a seeded rate: the
  call stops there and nothing is answered, so the platform delivers again;
- backend, ledger and sink calls fail at a seeded rate (tests/support/faults.py): timeout, unavailable,
  quota, and "done but the caller saw a timeout";
- runs end at random times; each end sends completion notices (sometimes twice, sometimes an
  older state after the end) and the reconciler runs now and then (it crashes and fails too).

Then faults and crashes stop, and the platform and the reconciler run until every delivery is
acknowledged and every result published. The table counts what went in and what came out;
the test tier runs the same simulation and asserts the zeros.

The crash here is in-process (an exception no handler catches at the point); the real thing,
SIGKILL of a process on both ledgers, is tests/e2e/test_crash_points.py.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from events.decoders import decode
from events.envelope import parse_http
from events.model import Ignored
from events.router import RunRequest
from functions import bootstrap
from functions.service import completion, crashpoints, intake
from functions.service.ports import Services, ledger_ports
from functions.service.records import Outcome
from functions.settings import Settings
from pipelines.backend import RunState
from tests.support import ROUTES, completion_event, storage_event
from tests.support.fakes import RecordingBackend, RecordingSink
from tests.support.faults import Crasher, Faults, answer

LEASE = 30.0
ACCOUNTED = {Outcome.SKIPPED, Outcome.QUARANTINED, Outcome.IGNORED}


@dataclass
class Report:
    events: int = 0
    deliveries: int = 0
    duplicates: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    calls: int = 0
    runs_created: int = 0
    duplicate_runs: int = 0
    unaccounted: int = 0
    results: int = 0
    duplicate_results: int = 0  # run keys whose results carry more than one event id
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, str]]:
        share = f"{self.faults / self.calls:.0%}"
        points = ", ".join(f"{point} {self.crashes[point]}" for point in crashpoints.POINTS)
        return [
            ("events", f"{self.events:,}"),
            ("deliveries", f"{self.deliveries:,}"),
            ("duplicates injected", f"{self.duplicates:,} ({self.duplicates / self.deliveries:.0%})"),
            ("crashes", f"{sum(self.crashes.values()):,} ({points})"),
            (
                "faults injected",
                f"{self.faults:,} of {self.calls:,} port calls ({share})",
            ),
            ("runs created", f"{self.runs_created:,}"),
            ("duplicate runs", f"{self.duplicate_runs:,}"),
            ("events unaccounted for", f"{self.unaccounted:,}"),
            ("results published", f"{self.results:,}"),
            ("duplicate logical results", f"{self.duplicate_results:,}"),
            ("simulated in", f"{self.seconds:.1f} s"),
        ]


@dataclass
class Delivery:
    due: float
    target: str  # "event" or "completion"
    headers: dict[str, str]
    body: bytes


def event_for(number: int) -> tuple[dict[str, str], bytes]:
    """Mostly events that start runs; some that routes skip, some quarantined."""
    kind = number % 10
    if kind == 8:  # a route listens to the bucket, none matches the name: a recorded skip
        return storage_event("some-bucket", f"elsewhere/part-{number}.csv", event_id=f"e-{number}")
    if kind == 9:  # nobody listens to this bucket: quarantined
        return storage_event("nobody-listens", f"part-{number}.csv", event_id=f"e-{number}")
    return storage_event(
        "some-bucket", f"folder/part-{number}.csv", generation=number, event_id=f"e-{number}"
    )


def simulate(
    deliveries: int = 10_000,
    *,
    duplicate_rate: float = 0.45,
    crash_rate: float = 0.01,
    fault_rate: float = 0.1,
    seed: int = 1,
) -> Report:
    """Deliver until `deliveries` were made, then drain; see the module docstring.

    `fault_rate` is per port call (a delivery makes several); `crash_rate` per crash point
    reached; `duplicate_rate` is the share of acknowledged events delivered again.
    """
    logging.disable(logging.WARNING)  # thousands of quarantines and retries are expected here
    try:
        return _simulate(deliveries, duplicate_rate, crash_rate, fault_rate, seed)
    finally:
        logging.disable(logging.NOTSET)


def _simulate(
    deliveries: int, duplicate_rate: float, crash_rate: float, fault_rate: float, seed: int
) -> Report:
    rng = random.Random(seed)
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            routes=ROUTES,
            state_dir=Path(scratch),
            auth="none",
            claim_lease_seconds=LEASE,
            reconcile_grace_seconds=0,
        )
        built = bootstrap.build(settings)
        engine = RecordingBackend()
        faults = Faults(fault_rate, seed)
        now = [1_800_000_000.0]
        results = RecordingSink()
        crasher = Crasher(lambda point: rng.random() < crash_rate, report.crashes)
        services: Services = replace(
            built,
            **ledger_ports(faults.wrap(built.store, "ledger")),
            backends={"local": faults.wrap(engine, "backend")},
            results=faults.wrap(results, "sink", "results"),
            quarantine=faults.wrap(RecordingSink(), "sink", "quarantine"),
            clock=lambda: now[0],
            crash=crasher,
        )
        pending: list[Delivery] = []
        events: list[tuple[dict[str, str], bytes]] = []

        def deliver(item: Delivery) -> None:
            report.deliveries += 1
            handler = intake.handle if item.target == "event" else completion.handle
            status = answer(lambda: handler(services, *parse_http(item.headers, item.body), item.body))
            if status is None or status >= 300:  # redelivered after a backoff
                pending.append(replace(item, due=now[0] + rng.uniform(10, 600 if status else 60)))
            elif item.target == "event" and rng.random() < duplicate_rate:
                report.duplicates += 1
                pending.append(replace(item, due=now[0] + rng.uniform(0, 3600)))

        def end_some_runs() -> None:
            running = [run_id for run_id, state in engine.states.items() if state is RunState.RUNNING]
            for run_id in rng.sample(running, k=min(len(running), rng.randint(0, 3))):
                state = RunState.SUCCEEDED if rng.random() < 0.9 else RunState.FAILED
                engine.states[run_id] = state
                run_key = engine.submitted[int(run_id.split("-")[1]) - 1].run_key
                for copy in range(rng.choice((1, 1, 2))):  # sometimes the notice twice
                    notice = completion_event(run_key, state, message_id=f"{run_id}-{copy}")
                    pending.append(Delivery(now[0] + rng.uniform(0, 120), "completion", *notice))
                if rng.random() < 0.1:  # a stale RUNNING notice arriving after the end
                    notice = completion_event(run_key, "RUNNING", message_id=f"{run_id}-late")
                    pending.append(Delivery(now[0] + rng.uniform(0, 300), "completion", *notice))

        while report.deliveries < deliveries:
            now[0] += rng.uniform(0, 2)
            if rng.random() < 0.4:
                events.append(event_for(len(events)))
                copies = 2 if rng.random() < 0.1 else 1  # now and then, twice at once
                report.duplicates += copies - 1
                pending.extend(Delivery(now[0], "event", *events[-1]) for _ in range(copies))
            due = [item for item in pending if item.due <= now[0]]
            if due:
                item = rng.choice(due)
                pending.remove(item)
                deliver(item)
            end_some_runs()
            if rng.random() < 0.02:
                answer(lambda: completion.reconcile_pass(services))
        # Drain: no more faults or crashes; the platform redelivers, the runs end, the
        # reconciler runs, until everything is acknowledged and published.
        faults.enabled = False
        crasher.enabled = False
        for _ in range(1000):
            now[0] += 3 * LEASE
            for item in sorted(pending, key=lambda item: item.due):
                pending.remove(item)
                deliver(item)
            for run_id in engine.states:
                if not engine.states[run_id].terminal:
                    engine.states[run_id] = RunState.SUCCEEDED
            completion.reconcile(services)
            if not pending and not built.store.unfinished() and not built.store.unpublished():
                break

        report.events = len(events)
        report.faults, report.calls = sum(faults.injected.values()), faults.calls
        keys = Counter(submission.run_key for submission in engine.submitted)
        report.runs_created = len(engine.submitted)
        report.duplicate_runs = sum(count - 1 for count in keys.values())
        report.unaccounted = sum(not accounted(built, headers, body) for headers, body in events)
        ids: dict[str, set[str]] = {}
        for document in results.published:
            data = document["data"]
            assert isinstance(data, dict)
            ids.setdefault(str(data["run_key"]), set()).add(str(document["id"]))
        report.results = len(results.published)
        report.duplicate_results = sum(len(found) > 1 for found in ids.values())
    report.seconds = time.perf_counter() - started
    return report


def accounted(services: Services, headers: dict[str, str], body: bytes) -> bool:
    """The event has a run on the engine, or a recorded skip, ignore or quarantine."""
    attributes, data = parse_http(headers, body)
    if any(decision.outcome in ACCOUNTED for decision in services.decisions.trail(attributes["id"])):
        return True
    decoded = decode(attributes, data)
    if isinstance(decoded, Ignored):
        return False
    requests = [d for d in services.router.route(decoded).decisions if isinstance(d, RunRequest)]
    runs = [services.store.get(request.run_key) for request in requests]
    return bool(runs) and all(run and run.run_id and run.state is not RunState.CLAIMED for run in runs)


def main() -> None:
    report = simulate()
    print("\nReliability: 10,000+ deliveries with duplicates, crashes and faults (bench/reliability.py)\n")
    width = max(len(name) for name, _ in report.rows())
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in report.rows():
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
