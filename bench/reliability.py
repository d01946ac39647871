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
  older state after the end) and the reconciler runs now and then (it crashes and fails too);
- the routes (SIM_ROUTES) run single objects, coalescing windows (whose objects are redelivered
  late), settle windows of objects and of messages, and manifests (whose parts land late, or
  never: `batch.max_wait`); a route with `max_active: 1` builds a queue and is removed from
  routes.yaml halfway (its queued runs become poison); some runs are deleted on the engine
  (their status lookup fails for good).

Then faults and crashes stop, and the platform and the reconciler run until every delivery is
acknowledged and every result published. The table counts what went in and what came out —
duplicate runs (a run key submitted twice, or an object in two coalesced batches), events
unaccounted for, runs stuck (not ended, or ended unpublished) — and the test tier runs the same
simulation and asserts the zeros.

The crash here is in-process (an exception no handler catches at the point); the real thing,
SIGKILL of a process on both ledgers, is tests/e2e/test_crash_points.py.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from bench import quiet
from events.envelope import parse_http
from events.eventarc import message_published, object_finalized
from events.router import Router
from functions import bootstrap
from functions.service import completion, crashpoints, intake, reconcile
from functions.service.joins import run_for
from functions.service.ports import Services, ledger_ports
from functions.service.records import DecisionRecord, Outcome
from functions.service.windows import JoinState, JoinStatus
from functions.settings import Settings
from pipelines import catalog
from pipelines.backend import RunState
from tests.support import completion_event
from tests.support.fakes import RecordingBackend, RecordingSink
from tests.support.faults import Crasher, Faults, answer

LEASE = 30.0
JOIN_GRACE = 60.0
ACCOUNTED = {Outcome.SKIPPED, Outcome.QUARANTINED, Outcome.IGNORED}
SIM_ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: files
    when: {storage: {bucket: some-bucket, object: "folder/{file}"}}
    run: {pipeline: echo, params: {message: "{file}"}}
  - name: windows
    when: {storage: {bucket: window-bucket, object: "{day}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{day}"}
    limits: {coalesce: 10m}
  - name: settled
    when: {storage: {bucket: settle-bucket, object: "{day}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{day}"}
    limits: {settle: {quiet: 5m, max_wait: 30m, max_items: 40}}
  - name: settled-messages
    when: {pubsub: {topic: sim-settle}}
    run: {pipeline: echo, run_key: "{route}/{data.k}"}
    limits: {settle: {quiet: 2m, max_items: 5}}
  - name: manifests
    when:
      storage: {bucket: batch-bucket, object: "{batch}/_MANIFEST.json", batch: {manifest: true, max_wait: 1h}}
    run: {pipeline: echo}
  - name: joined
    when:
      join:
        key: "{k}"
        within: 1h
        parts:
          closed: {pubsub: {topic: sim-events}, key: "{data.k}"}
          files: {storage: {bucket: join-bucket, object: "{k}/_SUCCESS"}}
    run: {pipeline: echo, params: {message: "{parts.closed.data.k}"}}
  - name: quorum
    when:
      join:
        key: "{k}"
        within: 1h
        require: {at_least: 2}
        on_late: rerun
        parts:
          closed: {pubsub: {topic: sim-quorum}, key: "{data.k}"}
          files: {storage: {bucket: quorum-bucket, object: "{k}/_SUCCESS"}, keep: latest}
          extra: {storage: {bucket: quorum-extra-bucket, object: "{k}/_EXTRA"}}
    run: {pipeline: echo, params: {message: {from: parts.closed.data.k, default: "-"}}}
  - name: latest
    when: {storage: {bucket: newest-bucket, object: "{tenant}/{file}"}}
    run: {pipeline: echo, params: {message: "{tenant}"}}
    limits: {concurrency: {key: "{tenant}", on_newer: supersede}}
  - name: doomed
    when: {storage: {bucket: doomed-bucket}}
    run: {pipeline: echo}
    limits: {max_active: 1}
"""
DOOMED = "doomed"  # removed from routes.yaml halfway through
BATCHING = ("windows", "settled", "settled-messages")  # an item in two of their batches is a duplicate


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
    lost_on_engine: int = 0
    unaccounted: int = 0
    stuck: int = 0
    results: int = 0
    duplicate_results: int = 0  # run keys whose results carry more than one event id
    joins_complete: int = 0
    joins_expired: int = 0
    joins_left_open: int = 0  # windows still OPEN past their window (and the grace) at the end
    superseded: int = 0  # runs cancelled on the engine for a newer run of their key
    duplicate_cancels: int = 0  # runs the engine was asked to cancel more than once
    settle_batches: int = 0  # runs of the settle routes, and the items they listed
    settled_items: int = 0
    late_runs: int = 0  # runs of a join's late arrivals (on_late: rerun)
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
            ("runs deleted on the engine", f"{self.lost_on_engine:,}"),
            ("duplicate runs", f"{self.duplicate_runs:,}"),
            ("events unaccounted for", f"{self.unaccounted:,}"),
            ("runs stuck after the final reconcile", f"{self.stuck:,}"),
            ("results published", f"{self.results:,}"),
            ("duplicate logical results", f"{self.duplicate_results:,}"),
            ("join windows complete / expired", f"{self.joins_complete:,} / {self.joins_expired:,}"),
            ("join windows left open past their window", f"{self.joins_left_open:,}"),
            ("runs superseded (cancelled on the engine)", f"{self.superseded:,}"),
            ("runs cancelled more than once", f"{self.duplicate_cancels:,}"),
            ("settle batches run (items)", f"{self.settle_batches:,} ({self.settled_items:,})"),
            ("runs of late join parts (on_late: rerun)", f"{self.late_runs:,}"),
            ("simulated in", f"{self.seconds:.1f} s"),
        ]


@dataclass
class Delivery:
    due: float
    target: str  # "event" or "completion"
    headers: dict[str, str]
    body: bytes


def event_for(number: int, now: float, landing: Path) -> tuple[dict[str, str], bytes]:
    """Mostly events that start runs (alone, in windows, by manifest, queued on the doomed
    route); some that routes skip, some quarantined. A manifest's parts are written to `landing`
    (the second one by `parts_later`)."""
    kind, sent = number % 20, datetime.fromtimestamp(now, UTC)
    if kind in (10, 11, 12):  # coalesced: ~60 objects per day key, over several windows
        bucket, name = "window-bucket", f"d{number // 400}/part-{number}.csv"
    elif kind in (13, 14):
        bucket, name = "batch-bucket", f"m{number}/_MANIFEST.json"
        folder = landing / bucket / f"m{number}"
        folder.mkdir(parents=True)
        (folder / "_MANIFEST.json").write_text('{"objects": ["part-0.csv", "part-1.csv"]}')
        (folder / "part-0.csv").write_text("a\n")
    elif kind in (15, 16):
        bucket, name = "doomed-bucket", f"part-{number}.csv"
    elif kind in (9, 19):  # a join's parts: per key, two "files" events then two "closed" ones
        key = f"j{number // 40}"  # one key in ten never gets its "closed" part: its window expires
        if kind == 19 and number // 40 % 10 != 0:
            data = json.dumps({"k": key, "n": number}).encode()
            topic = "projects/sim/topics/sim-events"
            headers, body = message_published(topic, data, message_id=f"e-{number}", published=sent)
            return headers, json.dumps(body).encode()
        bucket, name = "join-bucket", f"{key}/_SUCCESS"
    elif kind == 7:  # settled: ~20 objects per day key, in batches that start once they stop coming
        bucket, name = "settle-bucket", f"d{number // 400}/part-{number}.csv"
    elif kind == 6:  # settled messages, ~5 per key
        data = json.dumps({"k": f"s{number // 100}", "n": number}).encode()
        topic = "projects/sim/topics/sim-settle"
        headers, body = message_published(topic, data, message_id=f"e-{number}", published=sent)
        return headers, json.dumps(body).encode()
    elif kind == 5:  # a quorum join's parts, 5 per key: 2 of 3 start its run, later ones rerun it
        key, which = f"q{number // 100}", number // 20 % 3
        if which == 0:
            data = json.dumps({"k": key, "n": number}).encode()
            topic = "projects/sim/topics/sim-quorum"
            headers, body = message_published(topic, data, message_id=f"e-{number}", published=sent)
            return headers, json.dumps(body).encode()
        bucket, name = (
            ("quorum-bucket", f"{key}/_SUCCESS") if which == 1 else ("quorum-extra-bucket", f"{key}/_EXTRA")
        )
    elif kind == 8:  # newer data for a tenant: supersedes the tenant's running run
        bucket, name = "newest-bucket", f"t{number // 20 % 3}/part-{number}.csv"
    elif kind == 17:  # a route listens to the bucket, none matches the name: a recorded skip
        bucket, name = "some-bucket", f"elsewhere/part-{number}.csv"
    elif kind == 18:  # nobody listens to this bucket: quarantined
        bucket, name = "nobody-listens", f"part-{number}.csv"
    else:
        bucket, name = "some-bucket", f"folder/part-{number}.csv"
    headers, data = object_finalized(
        bucket, name, generation=number + 1, size=10, updated=sent, event_id=f"e-{number}"
    )
    return headers, json.dumps(data).encode()


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
    with quiet():  # thousands of quarantines, retries and poison runs are expected here
        return _simulate(deliveries, duplicate_rate, crash_rate, fault_rate, seed)


def _simulate(
    deliveries: int, duplicate_rate: float, crash_rate: float, fault_rate: float, seed: int
) -> Report:
    rng = random.Random(seed)
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "routes.yaml").write_text(SIM_ROUTES)
        without_doomed = SIM_ROUTES[: SIM_ROUTES.index(f"  - name: {DOOMED}")]
        (folder / "routes-after.yaml").write_text(without_doomed)
        settings = Settings(
            routes=folder / "routes.yaml",
            state_dir=folder,
            landing_dir=folder / "landing",
            auth="none",
            claim_lease_seconds=LEASE,
            reconcile_grace_seconds=0,
            join_grace_seconds=JOIN_GRACE,
        )
        built = bootstrap.build(settings)
        after = catalog.load(folder / "routes-after.yaml", settings.packages_dir)
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
        current = [services]  # replaced when routes.yaml loses the doomed route
        pending: list[Delivery] = []
        events: list[tuple[dict[str, str], bytes]] = []
        parts_later: list[tuple[float, Path]] = []  # manifest parts that land late

        def deliver(item: Delivery) -> None:
            report.deliveries += 1
            handler = intake.handle if item.target == "event" else completion.handle
            status = answer(lambda: handler(current[0], *parse_http(item.headers, item.body), item.body))
            if status is None or status >= 300:  # redelivered after a backoff
                pending.append(replace(item, due=now[0] + rng.uniform(10, 600 if status else 60)))
            elif item.target == "event" and rng.random() < duplicate_rate:
                report.duplicates += 1
                pending.append(replace(item, due=now[0] + rng.uniform(0, 3600)))

        def land_parts() -> None:
            for due, path in [entry for entry in parts_later if entry[0] <= now[0]]:
                parts_later.remove((due, path))
                path.write_text("b\n")

        def end_some_runs() -> None:
            running = [run_id for run_id, state in engine.states.items() if state is RunState.RUNNING]
            for run_id in rng.sample(running, k=min(len(running), rng.randint(0, 3))):
                if run_id in engine.lost:
                    continue
                if rng.random() < 0.02:  # deleted on the engine: its status lookup fails for good
                    engine.lost.add(run_id)
                    continue
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
                number = len(events)
                events.append(event_for(number, now[0], settings.landing_dir))
                if number % 20 in (13, 14) and rng.random() < 0.4:  # part 1 lands late, or never
                    part = settings.landing_dir / "batch-bucket" / f"m{number}" / "part-1.csv"
                    if rng.random() < 0.75:
                        parts_later.append((now[0] + rng.uniform(60, 1800), part))
                elif number % 20 in (13, 14):
                    (settings.landing_dir / "batch-bucket" / f"m{number}" / "part-1.csv").write_text("b\n")
                copies = 2 if rng.random() < 0.1 else 1  # now and then, twice at once
                report.duplicates += copies - 1
                pending.extend(Delivery(now[0], "event", *events[-1]) for _ in range(copies))
            if report.deliveries >= deliveries // 2 and current[0] is services:  # routes.yaml changes
                current[0] = replace(services, router=Router(after.rules), catalog=after.catalog)
            land_parts()
            due = [item for item in pending if item.due <= now[0]]
            if due:
                item = rng.choice(due)
                pending.remove(item)
                deliver(item)
            end_some_runs()
            if rng.random() < 0.02:
                answer(lambda: reconcile.reconcile_pass(current[0]))
        # Drain: no more faults or crashes; the platform redelivers, the runs end, the
        # reconciler runs, until everything is acknowledged and published.
        faults.enabled = False
        crasher.enabled = False
        for _ in range(1000):
            now[0] += 3 * LEASE
            land_parts()
            for item in sorted(pending, key=lambda item: item.due):
                pending.remove(item)
                deliver(item)
            for run_id in engine.states:
                if not engine.states[run_id].terminal and run_id not in engine.lost:
                    engine.states[run_id] = RunState.SUCCEEDED
            completion.reconcile(current[0])
            if (
                not pending
                and not parts_later
                and not stuck(built)
                and not built.queue.joins(status=JoinStatus.OPEN)
            ):
                break

        report.events = len(events)
        report.faults, report.calls = sum(faults.injected.values()), faults.calls
        report.runs_created = len(engine.submitted)
        report.lost_on_engine = len(engine.lost)
        keys = Counter(submission.run_key for submission in engine.submitted)
        batched = Counter(
            (submission.route, str(uri))
            for submission in engine.submitted
            if submission.route in BATCHING
            for uri in submission.params.get("batch_objects", [])  # type: ignore[attr-defined]
        )
        report.duplicate_runs = sum(count - 1 for count in (*keys.values(), *batched.values()))
        settled = [s for s in engine.submitted if s.route.startswith("settled")]
        report.settle_batches = len(settled)
        report.late_runs = sum("~late-" in submission.run_key for submission in engine.submitted)
        report.settled_items = sum(len(s.params.get("batch_objects", [])) for s in settled)  # type: ignore[arg-type]
        report.unaccounted = sum(not accounted(built, headers) for headers, _ in events)
        report.stuck = len(stuck(built))
        ids: dict[str, set[str]] = {}
        for document in results.published:
            data = document["data"]
            assert isinstance(data, dict)
            ids.setdefault(str(data["run_key"]), set()).add(str(document["id"]))
        report.results = len(results.published)
        report.duplicate_results = sum(len(found) > 1 for found in ids.values())
        windows = built.queue.joins()
        report.joins_complete = sum(w.status is JoinStatus.COMPLETE for w in windows)
        report.joins_expired = sum(w.status is JoinStatus.EXPIRED for w in windows)
        report.joins_left_open = sum(
            w.status is JoinStatus.OPEN and w.expires + JOIN_GRACE < now[0] for w in windows
        )
        report.superseded = len(set(engine.cancels))
        report.duplicate_cancels = len(engine.cancels) - len(set(engine.cancels))
    report.seconds = time.perf_counter() - started
    return report


def stuck(services: Services) -> list[str]:
    """Runs not ended (claimed, queued, submitted) or ended with their result unpublished."""
    waiting = [
        run for state in (RunState.CLAIMED, RunState.QUEUED) for run in services.store.runs(state=state)
    ]
    return [run.run_key for run in (*waiting, *services.store.unfinished(), *services.store.unpublished())]


def accounted(services: Services, headers: dict[str, str]) -> bool:
    """The event has a recorded skip, ignore or quarantine, or a decision about a run (its own,
    or the coalesced batch holding its object) that reached the engine or ended; a join's part
    is accounted for by its window's run (or the skip its expiry recorded), a repeat of a part by
    the window holding that part's arrival (a late arrival: by its own run)."""
    event_id = headers["ce-id"]
    trail = services.decisions.trail(event_id)
    if any(decision.outcome in ACCOUNTED for decision in trail) or _ran(services, trail):
        return True
    rules = services.router.by_name
    for route in {d.route for d in trail if d.route in rules and rules[d.route].join is not None}:
        for window in services.queue.joins(route=route):
            events = {arrived.event.event_id for arrived in window.arrivals}
            repeated = any(f"arrived already (event {other})" in d.reason for d in trail for other in events)
            if (event_id in events or repeated) and _window_accounted(services, window):
                return True
    return False


def _window_accounted(services: Services, window: JoinState) -> bool:
    """An expired window recorded a skip for each part; a complete one started its run — found
    by the run key the window builds, for the delivery that launched it may be a repeat of a
    part, whose own event is not one of the window's parts."""
    if window.status is JoinStatus.EXPIRED:
        return True
    if window.status is not JoinStatus.COMPLETE:
        return False
    rule = services.router.by_name[window.route]
    built = run_for(rule, window, services.catalog, "")
    if isinstance(built, str):  # the run cannot be built: the completing part recorded the skip
        return True
    return _started(services, built.run_key)


def _ran(services: Services, trail: list[DecisionRecord]) -> bool:
    return any(_started(services, decision.run_key) for decision in trail if decision.run_key)


def _started(services: Services, run_key: str) -> bool:
    """The run reached the engine, or ended (a claim alone is not enough)."""
    run = services.store.get(run_key)
    return (
        run is not None
        and (run.run_id is not None or run.state.terminal)
        and run.state is not RunState.CLAIMED
    )


def main() -> None:
    report = simulate(20_000)
    print(
        "\nReliability: 20,000+ deliveries with duplicates, crashes, faults, coalescing, settle, manifest,"
        " join (all, at least 2 of 3, late reruns) and supersede routes, a route removed mid-flight"
        " and runs deleted on the engine"
        " (bench/reliability.py)\n"
    )
    width = max(len(name) for name, _ in report.rows())
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in report.rows():
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
