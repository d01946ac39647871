"""Cost per million events at Google's list prices, from what each delivery is measured to do.

In process on the Firestore and Pub/Sub emulators (a recording backend: no engine is priced),
EVENTS deliveries of each kind, counted as Google bills them: Firestore documents read (each
document a BatchGetDocuments asks for, each a query returns, at least one per query) and written
(each write in a Commit); Pub/Sub messages published (results, quarantine). Timed: this process's
CPU-seconds per delivery (the function's own work, the client libraries included) and the wall
time. Kinds:

    new         a finalize event a route takes: a run starts
    duplicate   the same event again (a redelivery)
    skip        an event a route listens for, whose object name it does not match
    completion  the run's completion notice: its end recorded, its result published

Priced (PRICES; docs/benchmarks.md names each page and the day it was read): a Cloud Run
function at 512 MiB (deploy/terraform/functions.tf) with its 0.333 vCPU, billed per request
(Tier 1) and at least 100 ms a request (each request rounded up to 100 ms, one at a time per
instance); Firestore Standard documents in a multi-region; Pub/Sub throughput at 1,000 bytes a
request at least, the push that delivers the event included. Beside it, what the always-on
alternatives cost before they trigger anything.

    python -m bench.costs [--events 200]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench import quiet
from bench.round_trips import production_services
from functions.service import completion, intake
from pipelines.backend import RunState
from tests.support import call, completion_event, storage_event
from tests.support.fakes import RecordingBackend

EVENTS = 200
KINDS = ("new", "duplicate", "skip", "completion")
PRICES = {  # USD, list prices
    "request": 0.40 / 1e6,  # Cloud Run, per request (Tier 1)
    "vcpu_second": 0.000024,  # Cloud Run, per vCPU-second, CPU allocated during requests (Tier 1)
    "gib_second": 0.0000025,  # Cloud Run, per GiB-second (Tier 1)
    "read": 0.06 / 1e5,  # Firestore Standard, multi-region, per document read
    "write": 0.18 / 1e5,  # Firestore Standard, multi-region, per document written
    "pubsub_tib": 40.0,  # Pub/Sub throughput, per TiB
}
MEMORY_GIB, VCPU = 0.5, 0.333  # the function's size: 512 MiB, and the vCPU that memory comes with
BILLED_STEP = 0.1  # seconds: Cloud Run rounds each request up to 100 ms
PUBSUB_MINIMUM = 1000  # bytes billed per publish or push request at least
MONTH_HOURS = 730
ALWAYS_ON = (  # (what, USD an hour before anything runs, the price it rests on)
    (
        "GKE Standard cluster for an Argo Events sensor: the cluster fee alone, before its nodes",
        0.10,
        "$0.10/h",
    ),
    ("Cloud Composer 3: each DCU the environment holds, before its database storage", 0.06, "$0.06/DCU-hour"),
)


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count, while the block runs, what Firestore and Pub/Sub bill: documents read and written,
    messages published (the Google clients' own calls, wrapped)."""
    from google.cloud.firestore_v1.services.firestore.client import FirestoreClient
    from google.cloud.pubsub_v1 import PublisherClient

    counted: Counter[str] = Counter()
    saved = {name: getattr(FirestoreClient, name) for name in ("commit", "batch_get_documents", "run_query")}
    publish = PublisherClient.publish

    def field(request: Any, name: str) -> Any:
        return request[name] if isinstance(request, dict) else getattr(request, name)

    def commit(self: Any, request: Any = None, **kwargs: Any) -> Any:
        counted["written"] += len(field(request, "writes"))
        return saved["commit"](self, request=request, **kwargs)

    def batch_get(self: Any, request: Any = None, **kwargs: Any) -> Any:
        counted["read"] += len(field(request, "documents"))
        return saved["batch_get_documents"](self, request=request, **kwargs)

    def run_query(self: Any, request: Any = None, **kwargs: Any) -> Any:
        answers = list(saved["run_query"](self, request=request, **kwargs))
        counted["read"] += max(1, sum(1 for answer in answers if answer.document.name))
        return iter(answers)

    def published(self: Any, *args: Any, **kwargs: Any) -> Any:
        counted["published"] += 1
        return publish(self, *args, **kwargs)

    FirestoreClient.commit, FirestoreClient.batch_get_documents = commit, batch_get  # type: ignore[method-assign]
    FirestoreClient.run_query = run_query  # type: ignore[method-assign]
    PublisherClient.publish = published  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        for name, original in saved.items():
            setattr(FirestoreClient, name, original)
        PublisherClient.publish = publish  # type: ignore[method-assign]


def deliveries(services: Any, engine: RecordingBackend, count: int) -> dict[str, list[Callable[[], object]]]:
    """`count` deliveries of each kind, in the order they must happen."""

    def event(number: int) -> tuple[dict[str, str], bytes]:
        return storage_event("some-bucket", f"folder/cost-{number}.csv", event_id=f"cost-{number}")

    def ended(number: int) -> object:
        key = f"some-bucket-folder/some-bucket/folder/cost-{number}.csv#1"
        engine.states[str(engine.find(key))] = RunState.SUCCEEDED
        return call(completion.handle, services, *completion_event(key, "SUCCEEDED", f"n-{number}"))

    skipped = [storage_event("some-bucket", f"elsewhere/{n}.csv", event_id=f"skip-{n}") for n in range(count)]
    return {
        "new": [lambda n=n: call(intake.handle, services, *event(n)) for n in range(count)],
        "duplicate": [lambda n=n: call(intake.handle, services, *event(n)) for n in range(count)],
        "skip": [lambda s=s: call(intake.handle, services, *s) for s in skipped],
        "completion": [lambda n=n: ended(n) for n in range(count)],
    }


def measure(count: int) -> dict[str, dict[str, float]]:
    """Per kind: documents read and written, messages published, CPU and wall seconds, per delivery."""
    with production_services("costs") as (services, engine), quiet():
        for warm in deliveries(services, engine, 1)["new"]:  # clients connected first
            warm()
        found = {}
        with counting() as counted:
            for kind, calls in deliveries(services, engine, count).items():
                counted.clear()
                cpu, wall = time.process_time(), time.perf_counter()
                for deliver in calls:
                    deliver()
                figures = {name: counted[name] / count for name in ("read", "written", "published")}
                figures["cpu"] = (time.process_time() - cpu) / count
                figures["wall"] = (time.perf_counter() - wall) / count
                found[kind] = figures
    return found


def per_million(figures: dict[str, float]) -> dict[str, float]:
    """USD per million deliveries of one kind, by what is billed."""
    billed = max(BILLED_STEP, math.ceil(figures["wall"] / BILLED_STEP) * BILLED_STEP)
    pushes = 1 + figures["published"]  # the push that delivered it, and what it published
    return {
        "function": 1e6
        * (PRICES["request"] + billed * (VCPU * PRICES["vcpu_second"] + MEMORY_GIB * PRICES["gib_second"])),
        "firestore": 1e6 * (figures["read"] * PRICES["read"] + figures["written"] * PRICES["write"]),
        "pubsub": 1e6 * pushes * PUBSUB_MINIMUM / 2**40 * PRICES["pubsub_tib"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=EVENTS, help="deliveries of each kind")
    args = parser.parse_args(argv)
    print(f"\nCost per million events (bench/costs.py): {args.events} deliveries of each kind\n")
    found = measure(args.events)
    head = (
        "| delivery | Firestore reads | writes | Pub/Sub publishes | CPU ms | function | Firestore | Pub/Sub"
    )
    print(head + " | USD per million |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        figures, cost = found[kind], per_million(found[kind])
        print(
            f"| {kind} | {figures['read']:.1f} | {figures['written']:.1f} | {figures['published']:.1f} "
            f"| {figures['cpu'] * 1000:.1f} | {cost['function']:.2f} | {cost['firestore']:.2f} "
            f"| {cost['pubsub']:.2f} | {sum(cost.values()):.2f} |"
        )
    new = sum(per_million(found["new"]).values()) / 1e6
    print(
        "\n| always on, before it triggers anything | USD a month | list price | new runs a month for that |"
    )
    print("|---|---:|---|---:|")
    for what, hourly, price in ALWAYS_ON:
        monthly = hourly * MONTH_HOURS
        print(f"| {what} | {monthly:,.2f} | {price} | {monthly / new:,.0f} |")


if __name__ == "__main__":
    main()
