"""The storm: the production shape on this machine, and what went in against what came out.

N functions-framework instances serve `handle_event` and `handle_completion`, one request at a
time each (Cloud Functions' default), on the Firestore and Pub/Sub emulators; a relay pushes to
them with Pub/Sub's semantics (tests/support/relay.py: redelivery on non-2xx, timeout and dropped
connections with backoff, duplicates after acknowledgement, any order); random busy instances are
SIGKILLed mid-request and replaced by a cold one; the KFP API fake (tests/support/kfp_fake.py)
is the cluster, with faults injected on its run calls (503, a run created but answered 504, a
run created but answered late); a Cloud Scheduler stand-in calls `reconcile` every
RECONCILE_EVERY seconds. The cluster ends runs after a random time and its exit step's
completion notice (sometimes twice, sometimes a stale RUNNING one) goes through the relay to
`handle_completion`, which publishes results to the Pub/Sub emulator.

The routes are the reliability simulation's (bench/reliability.py: single objects, coalescing
and settle windows, manifests whose parts land late or never, joins of all parts and of a quorum
with late reruns, supersede, a capped queue), on the KFP backend with `notify: true`, their
windows shortened to seconds. Then the storm stops (no more events, kills or faults), every run
still going ends, and the relay and the reconciler run until nothing is pending.

    python -m bench.storm [--deliveries 20000] [--instances 4]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from bench import emulated, quiet
from bench.reliability import SIM_ROUTES, accounted, event_for, stuck
from pipelines.backend import RunState
from tests.support import completion_event, env_for, serving
from tests.support.kfp_fake import FakeKfp
from tests.support.pubsub import pull, topic_with_subscription
from tests.support.relay import Instance, Killer, Message, Relay

SOURCE = str(Path(__file__).with_name("storm_app.py"))
RECONCILE_EVERY = 2.0
FAULT_EVERY = 1.0  # seconds between faults injected on the cluster's run calls, on average
LIFETIME = (0.5, 5.0)  # how long a run goes on the cluster, seconds
KILL_EVERY = 10.0  # seconds between SIGKILLs of a busy instance, on average
BACKLOG = 50  # new events wait while this many deliveries are queued or in flight
BATCHING = ("windows", "settled", "settled-messages")
ONE_RUN_EACH = ("files", "doomed")  # routes with exactly one run per event, and manifests with all parts
ONE_EACH = (0, 1, 2, 3, 4, 15, 16)  # their kinds in `event_for` (number % 20)
# Kinds whose deliveries write one shared document in a transaction (a settle window's head and
# run, the run a newer one supersedes, a capped route's places): on the emulator, commits that
# meet there wait out its 2-second lock timeout together and retry in step (firebase-tools#6758;
# Firestore proper wounds the younger at once), so the storm sends only this share of them, or the
# emulator's waits would set its pace.
SERIALIZED, SERIALIZED_SHARE = (5, 6, 7, 8, 15, 16), 0.25
# The simulation's routes on the cluster, windows in seconds; the capped queue holds 10 at once.
STORM_ROUTES = (
    SIM_ROUTES.replace(
        "  echo: {source: tests.support.echo_pipeline:echo_pipeline}",
        "  echo:\n    source: tests.support.echo_pipeline:echo_pipeline\n    backend: kfp\n"
        "    notify: true\n    pipeline_root: gs://storm-pipelines/root",
    )
    .replace("coalesce: 10m", "coalesce: 3s")
    .replace("quiet: 5m, max_wait: 30m", "quiet: 2s, max_wait: 20s")
    .replace("quiet: 2m", "quiet: 2s")
    .replace("max_wait: 1h", "max_wait: 60s")
    .replace("within: 1h", "within: 15s")
    .replace("max_active: 1", "max_active: 10")
)


@dataclass
class Report:
    instances: int = 0
    events: int = 0
    deliveries: int = 0
    duplicates_sent: int = 0
    redeliveries: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    faults: int = 0
    runs_expected: int = 0  # routes with one run per event (or per complete manifest)
    runs_created_expected: int = 0  # of those, created on the cluster
    runs_timed: int = 0  # runs of windows, joins and supersede: their number depends on timing
    runs_created: int = 0
    duplicate_runs: int = 0
    unaccounted: int = 0
    stuck: int = 0
    results: int = 0
    duplicate_results: int = 0
    seconds: float = 0.0
    drain_seconds: float = 0.0

    def rows(self) -> list[tuple[str, str, str]]:
        causes = ", ".join(f"{cause} {count:,}" for cause, count in sorted(self.redeliveries.items()))
        return [
            ("instances (handle_event, handle_completion)", f"{self.instances} + {self.instances}", ""),
            ("events", f"{self.events:,}", ""),
            ("deliveries", f"{self.deliveries:,}", ""),
            ("duplicates sent after an ack", f"{self.duplicates_sent:,}", ""),
            ("redeliveries (why)", f"{sum(self.redeliveries.values()):,} ({causes})", ""),
            ("instances SIGKILLed mid-request", f"{self.kills:,}", "> 0"),
            ("faults injected on the cluster", f"{self.faults:,}", ""),
            ("runs expected (one per event or manifest)", f"{self.runs_expected:,}", ""),
            ("… created", f"{self.runs_created_expected:,}", "= expected"),
            ("runs of windows, joins, supersede (by timing)", f"{self.runs_timed:,}", ""),
            ("runs created on the cluster", f"{self.runs_created:,}", ""),
            ("duplicate runs", f"{self.duplicate_runs:,}", "0"),
            ("events unaccounted for", f"{self.unaccounted:,}", "0"),
            ("runs stuck", f"{self.stuck:,}", "0"),
            ("results published (one per run that ended)", f"{self.results:,}", ""),
            ("duplicate results", f"{self.duplicate_results:,}", "0"),
            ("storm, then drain", f"{self.seconds:.0f} s, {self.drain_seconds:.0f} s", ""),
        ]

    def holds(self) -> bool:
        return (
            self.kills > 0
            and self.runs_created_expected == self.runs_expected
            and not (self.duplicate_runs or self.unaccounted or self.stuck or self.duplicate_results)
        )


class Cluster:
    """The KFP cluster's side: runs end after a while and their exit step's notice is pushed to
    `handle_completion`; faults are injected on run calls now and then."""

    def __init__(self, fake: FakeKfp, completions: Relay, seed: int) -> None:
        self.fake, self.completions, self.rng = fake, completions, random.Random(seed)
        self.ends: dict[str, float] = {}
        self.faults = 0

    def step(self, everything: bool = False) -> None:
        now = time.monotonic()
        with self.fake.lock:
            for run_id, run in self.fake.runs.items():
                state = self.fake.states.get(run_id, run["state"])
                if state not in ("PENDING", "RUNNING", "CANCELING"):
                    continue
                ends = self.ends.setdefault(run_id, now + self.rng.uniform(*LIFETIME))
                if everything or ends <= now:
                    self._end(run_id, run, state)

    def _end(self, run_id: str, run: dict[str, Any], state: str) -> None:
        if state == "CANCELING":
            self.fake.end(run_id, "CANCELED")
        else:
            self.fake.states[run_id] = "SUCCEEDED" if self.rng.random() < 0.9 else "FAILED"
        final = RunState(self.fake.states[run_id])
        run_key = run["runtime_config"]["parameters"]["run_key"]
        for copy in range(self.rng.choice((1, 1, 2))):
            self.completions.publish(Message(*completion_event(run_key, final, f"{run_id}-{copy}")))
        if self.rng.random() < 0.1:
            stale = completion_event(run_key, RunState.RUNNING, f"{run_id}-late")
            self.completions.publish(Message(*stale), delay=self.rng.uniform(0, 3))

    def fault(self) -> None:
        kind = self.rng.choice(("503", "lost", "timeout", "503-list"))
        if kind == "503-list":
            self.fake.fail_next("GET", "/runs", "503")
        else:
            self.fake.fail_next("POST", "/runs", kind)
        self.faults += 1


def storm(
    scratch: Path, environment: dict[str, str], deliveries: int, instances: int, seed: int = 1
) -> Report:
    """Run the storm in `scratch` against the emulators `environment` points at (bench.wired)."""
    with quiet():
        return _storm(scratch, environment, deliveries, instances, seed)


def _storm(scratch: Path, environment: dict[str, str], deliveries: int, instances: int, seed: int) -> Report:
    report = Report(instances=instances)
    rng = random.Random(seed)
    (scratch / "routes.yaml").write_text(STORM_ROUTES)
    results_topic, results = topic_with_subscription("storm-results")
    completions_topic, _ = topic_with_subscription("storm-completions")
    fake = FakeKfp(slow_seconds=1.0)
    started = time.monotonic()
    with ExitStack() as stack:
        kfp_url = stack.enter_context(serving(fake))
        env = env_for(
            scratch,
            routes=scratch / "routes.yaml",
            **{
                **environment,
                "KFP_TRIGGER_RESULTS": f"pubsub://{results_topic}",
                "KFP_TRIGGER_LEDGER": f"{environment['KFP_TRIGGER_LEDGER']}-{uuid.uuid4().hex[:6]}",
            },
            KFP_TRIGGER_COMPLETION_TOPIC=f"pubsub://{completions_topic}",
            KFP_TRIGGER_KFP_HOST=kfp_url,
            KFP_TRIGGER_CLAIM_LEASE_SECONDS="10",
            KFP_TRIGGER_RECONCILE_GRACE_SECONDS="2",
            KFP_TRIGGER_JOIN_GRACE_SECONDS="2",
            KFP_TRIGGER_BACKEND_TIMEOUT_SECONDS="10",
            KFP_TRIGGER_LOG_FORMAT="json",
        )
        logs = scratch / "logs"
        logs.mkdir()
        pools = {
            target: [Instance(target, SOURCE, env, logs).start() for _ in range(instances)]
            for target in ("handle_event", "handle_completion")
        }
        scheduler = Instance("reconcile", SOURCE, env, logs).start()
        events = stack.enter_context(Relay(pools["handle_event"], seed=seed, duplicate_rate=0.3))
        completions = stack.enter_context(
            Relay(pools["handle_completion"], seed=seed + 1, duplicate_rate=0.1)
        )
        cluster = Cluster(fake, completions, seed)
        killer = Killer(pools["handle_event"] + pools["handle_completion"], every=KILL_EVERY, seed=seed)
        sent = _blow(
            report, rng, scratch / "landing", events, completions, cluster, killer, scheduler, deliveries
        )
        report.seconds = time.monotonic() - started
        services = _services(env)  # the ledger as the driver reads it, to drain and count
        _drain(report, events, completions, cluster, scheduler, services)
        for instance in [*pools["handle_event"], *pools["handle_completion"], scheduler]:
            instance.stop()
    report.deliveries = events.tally.deliveries + completions.tally.deliveries
    report.duplicates_sent = events.tally.duplicates + completions.tally.duplicates
    report.redeliveries = events.tally.redelivered + completions.tally.redelivered
    report.kills, report.faults, report.events = killer.kills, cluster.faults, len(sent)
    _count(report, services, fake, sent, results)
    return report


def _blow(
    report: Report,
    rng: random.Random,
    landing: Path,
    events: Relay,
    completions: Relay,
    cluster: Cluster,
    killer: Killer,
    scheduler: Instance,
    deliveries: int,
) -> list[tuple[dict[str, str], bytes]]:
    """New events while deliveries fall short of `deliveries`, with kills, faults and the
    scheduler going; the events sent."""
    sent: list[tuple[dict[str, str], bytes]] = []
    numbers = (n for n in itertools.count() if n % 20 not in SERIALIZED or rng.random() < SERIALIZED_SHARE)
    late: list[tuple[float, Path]] = []  # manifest parts that land later
    next_pass = next_fault = time.monotonic()
    with killer:
        while events.tally.deliveries + completions.tally.deliveries < deliveries:
            now = time.monotonic()
            if events.pending() < BACKLOG:
                number = next(numbers)
                sent.append(event_for(number, time.time(), landing))
                report.runs_expected += int(number % 20 in ONE_EACH) + _manifest_parts(
                    number, rng, landing, late, now
                )
                events.publish(Message(*sent[-1]))
            for due, part in [entry for entry in late if entry[0] <= now]:
                late.remove((due, part))
                part.write_text("b\n")
            if now >= next_fault:
                cluster.fault()
                next_fault = now + rng.expovariate(1 / FAULT_EVERY)
            if now >= next_pass:
                _reconcile(scheduler)
                next_pass = now + RECONCILE_EVERY
            cluster.step()
            time.sleep(0.002)
    for _, part in late:
        part.write_text("b\n")
    return sent


def _manifest_parts(
    number: int, rng: random.Random, landing: Path, late: list[tuple[float, Path]], now: float
) -> int:
    """Land a manifest's second part now, later, or never (`event_for` wrote the first); 1 if
    the manifest will be complete (a run is expected), else 0."""
    if number % 20 not in (13, 14):
        return 0
    part = landing / "batch-bucket" / f"m{number}" / "part-1.csv"
    if rng.random() >= 0.4:
        part.write_text("b\n")
        return 1
    if rng.random() < 0.75:
        late.append((now + rng.uniform(1, 5), part))
        return 1
    return 0  # never: the manifest's max_wait records a skip


def _reconcile(scheduler: Instance) -> None:
    with contextlib.suppress(requests.RequestException):  # Cloud Scheduler tries again at the next tick
        requests.post(scheduler.url, timeout=60)


def _drain(
    report: Report,
    events: Relay,
    completions: Relay,
    cluster: Cluster,
    scheduler: Instance,
    services: Any,
) -> None:
    """No more events, kills or faults: end every run and reconcile until nothing is left."""
    from functions.service.windows import JoinStatus

    started = time.monotonic()
    cluster.fake.faults.clear()
    deadline = started + 300
    while time.monotonic() < deadline:
        cluster.step(everything=True)
        _reconcile(scheduler)
        if (
            events.settle(time.monotonic() + 5)
            and completions.settle(time.monotonic() + 5)
            and not stuck(services)
            and not services.queue.joins(status=JoinStatus.OPEN)
        ):
            break
        time.sleep(1)
    report.drain_seconds = time.monotonic() - started


def _services(env: dict[str, str]) -> Any:
    from functions import bootstrap
    from functions.settings import Settings

    values = {
        k.removeprefix("KFP_TRIGGER_").lower(): v for k, v in env.items() if k.startswith("KFP_TRIGGER_")
    }
    return bootstrap.build(Settings(**values))


def _count(
    report: Report, services: Any, fake: FakeKfp, sent: list[tuple[dict[str, str], bytes]], results: str
) -> None:
    names = Counter(run["display_name"] for run in fake.runs.values())
    report.runs_created = len(fake.runs)
    routes = {
        run.run_key: run.route
        for route in services.router.by_name
        for run in services.store.runs(route=route, limit=1_000_000)
    }
    batched = Counter(
        (run.route, str(uri))
        for run in (services.store.get(key) for key, route in routes.items() if route in BATCHING)
        if run is not None and run.run_id
        for uri in run.params.get("batch_objects", [])  # type: ignore[attr-defined]
    )
    report.duplicate_runs = sum(n - 1 for n in (*names.values(), *batched.values()))
    one_each = {key for key, route in routes.items() if route in (*ONE_RUN_EACH, "manifests")}
    report.runs_created_expected = sum(1 for name in names if name in one_each)
    report.runs_timed = report.runs_created - report.runs_created_expected
    log = Prefetched(services.decisions.recent(0.0, limit=10**8), services.queue)
    read_once = replace(services, decisions=log, queue=log)
    report.unaccounted = sum(not accounted(read_once, headers) for headers, _ in sent)
    report.stuck = len(stuck(services))
    ids: dict[str, set[str]] = {}
    for message in pull(results, count=10**9, wait=15):
        ids.setdefault(json.loads(message.data)["run_key"], set()).add(message.attributes["ce-id"])
    report.results = sum(len(found) for found in ids.values())
    report.duplicate_results = sum(len(found) > 1 for found in ids.values())


class Prefetched:
    """The decision log and each route's join windows read once, answered from memory: the
    emulator answers each query by scanning its collection, and accounting asks three trail
    queries per event and, for a join's part, the route's windows (a query per window's parts)."""

    def __init__(self, decisions: list[Any], queue: Any) -> None:
        self._queue = queue
        self._by: dict[str, list[Any]] = defaultdict(list)
        self._windows: dict[str, list[Any]] = {}
        for decision in decisions:
            for key in {decision.event_id, decision.event_key, decision.run_key} - {""}:
                self._by[key].append(decision)

    def trail(self, identifier: str) -> list[Any]:
        return sorted(self._by.get(identifier, []), key=lambda decision: decision.at)

    def joins(self, *, route: str) -> list[Any]:
        if route not in self._windows:
            self._windows[route] = self._queue.joins(route=route)
        return self._windows[route]


def table(report: Report) -> str:
    lines = ["| storm | value | must be |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {bound} |" for name, value, bound in report.rows()]
    lines.append(f"\nzeros where they must be: {'pass' if report.holds() else 'MISS'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--instances", type=int, default=4)
    args = parser.parse_args(argv)
    print(
        f"\nStorm: {args.deliveries:,}+ deliveries on {args.instances} instances a target (bench/storm.py)\n"
    )
    with (
        tempfile.TemporaryDirectory() as scratch,
        emulated(Path(scratch), f"storm-{uuid.uuid4().hex[:6]}") as env,
    ):
        print(table(storm(Path(scratch), env, args.deliveries, args.instances)))


if __name__ == "__main__":
    main()
