"""How throughput grows with instances, and whether any Firestore document becomes a hot spot.

1. Scaling: the storm's relay (tests/support/relay.py, Pub/Sub push semantics, one request at a
   time per instance) sends EVENTS new finalize events on a single-object route to 1, 2 and 4
   `handle_event` instances (Firestore ledger, Pub/Sub sinks, the KFP API fake as the cluster),
   and the same events to as many no-op CloudEvent instances, one after the other in one run:
   events per second, and each against the no-op on the same relay.
2. Hot documents: a burst of BURST objects on one route (one that `expect`s arrivals, so every
   shared document the intake writes is in play) through 4 instances. Every Firestore commit the
   instances make is logged per document (bench/storm_app.py wraps the client's commit); for each
   document, the most writes it received in any one second, and sustained over any
   SUSTAINED-second span. Firestore sustains about one write per second to a document
   (firebase.google.com/docs/firestore/best-practices, "Updates to a single document"); the target
   is ≤ 1/s sustained for every document outside a run's own.

    python -m bench.scaling
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import emulated, quiet
from bench.storm import SOURCE
from tests.support import env_for, serving, storage_event
from tests.support.kfp_fake import FakeKfp
from tests.support.relay import Instance, Message, Relay

EVENTS = 400
WARM = 20
BURST = 1_000
SUSTAINED = 10  # seconds
INSTANCES = (1, 2, 4)
ROUTES = """
version: 1
pipelines:
  echo:
    source: tests.support.echo_pipeline:echo_pipeline
    backend: kfp
    notify: true
    pipeline_root: gs://scaling-pipelines/root
routes:
  - name: landed
    when: {storage: {bucket: landing, object: "responses/{tenant}/{file}"}}
    run: {pipeline: echo, params: {message: "{file}"}}
    expect: {every: 1d, by: "07:00"}
"""


@contextmanager
def instances(target: str, count: int, env: dict[str, str], logs: Path) -> Iterator[list[Instance]]:
    pool = [Instance(target, SOURCE, env, logs).start() for _ in range(count)]
    try:
        yield pool
    finally:
        for instance in pool:
            instance.stop()


def events(label: str, count: int) -> list[Message]:
    return [
        Message(*storage_event("landing", f"responses/t{n % 7}/{label}-{n}.csv", event_id=f"{label}-{n}"))
        for n in range(count)
    ]


def throughput(pool: list[Instance], label: str) -> float:
    """Events per second through the relay to `pool`, after a warm-up."""
    with Relay(pool, seed=1, jitter=0.0) as relay:
        for message in events(f"{label}-warm", WARM):
            relay.publish(message)
        relay.settle(time.monotonic() + 300)
        started = time.monotonic()
        for message in events(label, EVENTS):
            relay.publish(message)
        if not relay.settle(time.monotonic() + 600):
            raise RuntimeError(f"{label}: the relay did not drain")
        seconds = time.monotonic() - started
        assert not relay.tally.redelivered, f"{label}: {relay.tally.redelivered}"
    return EVENTS / seconds


def scaling(env: dict[str, str], logs: Path) -> dict[tuple[str, int], float]:
    figures = {}
    for count in INSTANCES:
        for target in ("noop", "handle_event"):
            with instances(target, count, env, logs) as pool:
                figures[target, count] = throughput(pool, f"{target}-{count}")
    return figures


def hot_documents(env: dict[str, str], scratch: Path) -> dict[str, tuple[int, int, int, float]]:
    """Burst BURST objects on the route through 4 instances logging their writes: per collection,
    (documents written, most writes to one, most to one in any second, most to one per second
    over any SUSTAINED-second span)."""
    writes = scratch / "writes"
    writes.mkdir()
    logging = env | {"BENCH_WRITES_DIR": str(writes)}
    with (
        instances("handle_event", 4, logging, scratch / "logs") as pool,
        Relay(pool, seed=2, jitter=0.0) as relay,
    ):
        for message in events("burst", BURST):
            relay.publish(message)
        if not relay.settle(time.monotonic() + 900):
            raise RuntimeError("the burst did not drain")
    times: dict[str, list[float]] = defaultdict(list)
    for log in writes.glob("writes-*.tsv"):
        for line in log.read_text().splitlines():
            at, path = line.split("\t", 1)
            if not path.startswith("!"):  # a failed commit wrote nothing
                times[path].append(float(at))
    found: dict[str, tuple[int, int, int, float]] = {}
    for path, moments in times.items():
        peak = max(Counter(int(moment) for moment in moments).values())
        sustained = max(Counter(int(moment) // SUSTAINED for moment in moments).values()) / SUSTAINED
        documents, most, worst, spread = found.get(collection(path), (0, 0, 0, 0.0))
        found[collection(path)] = (
            documents + 1,
            max(most, len(moments)),
            max(worst, peak),
            max(spread, sustained),
        )
    return found


def collection(path: str) -> str:
    """The collection of a document path (…/documents/<collection>/<id>)."""
    return path.split("/documents/", 1)[-1].split("/", 1)[0]


def main() -> None:
    print(
        f"\nScaling and hot documents (bench/scaling.py): {EVENTS} events a pool, a {BURST:,}-object burst\n"
    )
    name = f"scaling-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as folder, emulated(Path(folder), name) as wired:
        scratch = Path(folder)
        (scratch / "routes.yaml").write_text(ROUTES)
        (scratch / "logs").mkdir()
        with quiet(), serving(FakeKfp()) as kfp_url:
            env = env_for(scratch, routes=scratch / "routes.yaml", **wired, KFP_TRIGGER_KFP_HOST=kfp_url)
            env["KFP_TRIGGER_LOG_FORMAT"] = "json"
            figures = scaling(env, scratch / "logs")
            rows = hot_documents(env | {"KFP_TRIGGER_LEDGER": f"{env['KFP_TRIGGER_LEDGER']}-burst"}, scratch)
    print("| instances | no-op events/s | handle_event events/s | handle_event / no-op | vs 1 instance |")
    print("|---|---|---|---|---|")
    one = figures["handle_event", 1]
    for count in INSTANCES:
        noop, real = figures["noop", count], figures["handle_event", count]
        print(f"| {count} | {noop:,.0f} | {real:,.0f} | {real / noop:.2f} | {real / one:.2f}x |")
    runs = f"{name}-burst"  # the collection of run records: each run's own document
    head = f"collection, {BURST:,} objects on one route | documents | most writes to one | in 1 s"
    print(f"\n| {head} | per s over {SUSTAINED} s |")
    print("|---|---|---|---|---|")
    for kind, (documents, most, peak, sustained) in sorted(rows.items()):
        label = "runs (each a run's own)" if kind == runs else kind.removeprefix(runs + "-")
        print(f"| {label} | {documents:,} | {most:,} | {peak} | {sustained:.1f} |")
    worst = max((row[3] for kind, row in rows.items() if kind != runs), default=0.0)
    verdict = "pass" if worst <= 1.0 else "MISS"
    print(f"\ntarget: ≤ 1 write/s sustained to any document outside a run's own → {worst:.1f}/s {verdict}")


if __name__ == "__main__":
    main()
