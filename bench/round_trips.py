"""Round trips per event on the production adapters (issue 19): counted, not timed.

What a delivery costs in production is its calls to Firestore and Pub/Sub (latency, and money per
call), so this counts them: every gRPC call the Google clients make is recorded by method
(`grpc`'s channel callables are wrapped for the bench's lifetime), against the Firestore and
Pub/Sub emulators, with results and quarantine on Pub/Sub topics and a recording backend. For the
SQLite ledger, its transactions are counted instead (`counting_sqlite`: a read transaction or a
lone SELECT is a read, a transaction that wrote is a commit). Five kinds of delivery, each after
the service is warm:

    new       a finalize event a route takes: a run starts
    duplicate the same event again
    skip      an event a route listens for, whose object name it does not match
    quarantine an event no route listens to
    completion the run's completion notice: its end recorded, its result published

    python -m bench.round_trips
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import emulated, quiet
from functions import bootstrap
from functions.service import completion, intake
from functions.service.ports import Services
from functions.settings import Settings
from pipelines.backend import RunState
from tests.support import ROUTES, call, completion_event, storage_event
from tests.support.fakes import RecordingBackend

KINDS = ("new", "duplicate", "skip", "quarantine", "completion")
KEY = "some-bucket-folder/some-bucket/folder/round-trip.csv#1"
READS = ("BatchGetDocuments", "RunQuery", "RunAggregationQuery", "GetDocument")
WRITES = ("Commit",)
TRANSACTIONS = ("BeginTransaction", "Rollback")


@contextmanager
def counting_grpc() -> Iterator[Counter[str]]:
    """Count every gRPC call (by method name) made while the block runs."""
    from grpc import _channel

    counted: Counter[str] = Counter()
    kinds = (
        _channel._UnaryUnaryMultiCallable,
        _channel._UnaryStreamMultiCallable,
        _channel._SingleThreadedUnaryStreamMultiCallable,
    )
    saved = [
        (kind, name, getattr(kind, name))
        for kind in kinds
        for name in ("__call__", "with_call", "future")
        if hasattr(kind, name)
    ]

    def wrapped(original: Callable[..., Any]) -> Callable[..., Any]:
        def call_counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            method = self._method.decode() if isinstance(self._method, bytes) else str(self._method)
            counted[method.rsplit("/", 1)[-1]] += 1
            return original(self, *args, **kwargs)

        return call_counted

    for kind, name, original in saved:
        setattr(kind, name, wrapped(original))
    try:
        yield counted
    finally:
        for kind, name, original in saved:
            setattr(kind, name, original)


@contextmanager
def counting_sqlite() -> Iterator[Counter[str]]:
    """Count the SQLite ledger's round trips on every connection it opens (`sqlite.database.connect`:
    each thread's reader, the process's writer): a read is a read transaction (a SELECT on its
    own, or BEGIN … COMMIT with reads only), a commit a transaction that wrote. Statements inside
    a transaction are its own, not round trips of their own."""
    from functions.adapters.sqlite import database

    counted: Counter[str] = Counter()
    original = database.connect

    def traced(path: Path, read_only: bool = False) -> sqlite3.Connection:
        connection = original(path, read_only)
        transaction = {"open": False, "wrote": False}  # this connection's

        def trace(statement: str) -> None:
            head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
            if head == "BEGIN":
                transaction.update(open=True, wrote=False)
            elif head in ("COMMIT", "ROLLBACK"):
                counted["commit" if transaction["wrote"] and head == "COMMIT" else "read"] += 1
                transaction.update(open=False, wrote=False)
            elif head in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
                transaction["wrote"] = True
            elif head == "SELECT" and not transaction["open"]:
                counted["read"] += 1

        connection.set_trace_callback(trace)
        return connection

    database.connect = traced
    try:
        yield counted
    finally:
        database.connect = original


def deliveries(services: Services, engine: RecordingBackend) -> Iterator[tuple[str, Callable[[], object]]]:
    new = storage_event("some-bucket", "folder/round-trip.csv", event_id="rt-1")

    def complete() -> object:
        engine.states[str(engine.find(KEY))] = RunState.SUCCEEDED
        return call(completion.handle, services, *completion_event(KEY, "SUCCEEDED", "n-rt"))

    yield "new", lambda: call(intake.handle, services, *new)
    yield "duplicate", lambda: call(intake.handle, services, *new)
    yield (
        "skip",
        lambda: call(
            intake.handle, services, *storage_event("some-bucket", "elsewhere/x.csv", event_id="rt-2")
        ),
    )
    yield (
        "quarantine",
        lambda: call(intake.handle, services, *storage_event("nobody-listens", "x.csv", event_id="rt-3")),
    )
    yield "completion", complete


def warm(services: Services) -> None:
    """One delivery of each kind on other keys first: clients connected, caches filled."""
    for number, (bucket, name) in enumerate(
        (("some-bucket", "folder/warm.csv"), ("some-bucket", "elsewhere/w.csv"), ("nobody-listens", "w.csv"))
    ):
        call(intake.handle, services, *storage_event(bucket, name, event_id=f"warm-{number}"))


def measure(services: Services, engine: RecordingBackend, counter: Counter[str]) -> dict[str, Counter[str]]:
    warm(services)
    found: dict[str, Counter[str]] = {}
    for kind, deliver in deliveries(services, engine):
        counter.clear()
        deliver()
        found[kind] = Counter(counter)
    return found


@contextmanager
def production_services(collection: str) -> Iterator[tuple[Services, RecordingBackend]]:
    """The service as deployed on the emulators (Firestore ledger in `collection`, Pub/Sub results
    and quarantine), in this process, with a recording backend: (services, backend)."""
    with tempfile.TemporaryDirectory() as scratch, emulated(Path(scratch), collection) as given:
        settings = Settings(
            routes=ROUTES,
            state_dir=Path(scratch),
            auth="none",
            ledger=given["KFP_TRIGGER_LEDGER"],
            results=given["KFP_TRIGGER_RESULTS"],
            quarantine=given["KFP_TRIGGER_QUARANTINE"],
        )
        engine = RecordingBackend()
        yield replace(bootstrap.build(settings), backends={"local": engine}), engine


def firestore_rows() -> tuple[dict[str, Counter[str]], dict[str, Counter[str]]]:
    with production_services("round-trips") as (services, engine), counting_grpc() as counter:
        deliveries_counted = measure(services, engine, counter)
        return deliveries_counted, reading(services, counter)


SEEDED = 300  # runs in the ledger when `status` and `runs` read it
PAGE = 50  # the `runs` page asked for


def reading(services: Services, counter: Counter[str]) -> dict[str, Counter[str]]:
    """What `kfp-trigger status` and a page of `kfp-trigger runs` cost with SEEDED runs in a
    Firestore ledger: calls by method, and the run documents read (decoded), which a scan of
    every run would make SEEDED."""
    from functions.adapters.firestore import runs as run_documents
    from functions.service import overview
    from functions.service.records import NewRun

    ledger: Any = services.store
    for number in range(SEEDED):
        route = ("some-bucket-folder", "retired-route")[number % 2]  # the second is not in routes.yaml
        ledger.claim(NewRun(f"{route}/seed#{number}", route, "p", "v", "local", {}, "e"), number, 60.0)
    decode = run_documents.record
    found: dict[str, Counter[str]] = {}

    def counted(document: Any) -> Any:
        counter["run documents read"] += 1
        return decode(document)

    run_documents.record = counted
    try:
        for name, read in (
            ("status", lambda: overview.status(ledger, services.router.rules, False, time.time())),
            (f"runs (a page of {PAGE})", lambda: ledger.runs(limit=PAGE)),
        ):
            counter.clear()
            read()
            found[name] = Counter(counter)
    finally:
        run_documents.record = decode
    return found


def sqlite_rows() -> dict[str, Counter[str]]:
    with tempfile.TemporaryDirectory() as scratch, counting_sqlite() as counter:
        settings = Settings(routes=ROUTES, state_dir=Path(scratch), auth="none")
        engine = RecordingBackend()
        services = replace(bootstrap.build(settings), backends={"local": engine})
        found = measure(services, engine, counter)
    if not found["new"]["commit"]:  # a new event's claim commits: the counter lost the ledger's connections
        raise RuntimeError("counting_sqlite saw no commit of a new event: it no longer traces the ledger")
    return found


# Issue 19's targets: (reads, commits) at most per delivery; None: no bound. Publishes are not
# bounded here (a quarantine and a result are one publish each, by design).
TARGETS: dict[str, tuple[int | None, int]] = {
    "new": (1, 2),
    "duplicate": (1, 1),
    "skip": (None, 1),
    "completion": (None, 2),
}


def verdict(kind: str, reads: int, commits: int) -> str:
    if kind not in TARGETS:
        return "—"
    most_reads, most_commits = TARGETS[kind]
    ok = commits <= most_commits and (most_reads is None or reads <= most_reads)
    bound = f"≤ {most_reads} read, " if most_reads is not None else ""
    return f"{'pass' if ok else '**miss**'} ({bound}≤ {most_commits} commits)"


def main(argv: list[str] | None = None) -> None:
    with quiet():  # quarantines are expected here
        firestore, readings = firestore_rows()
        sqlite = sqlite_rows()
    print("\nRound trips per delivery (bench/round_trips.py): gRPC calls to the Firestore and Pub/Sub")
    print("emulators by method; the SQLite ledger's read and write transactions\n")
    print(
        "| delivery | Firestore reads | Firestore commits | of which transactions | Pub/Sub publishes"
        " | Firestore target | SQLite reads | SQLite commits | SQLite target |"
    )
    print("|---|---:|---:|---:|---:|---|---:|---:|---|")
    for kind in KINDS:
        grpc, local = firestore[kind], sqlite[kind]
        reads = sum(grpc[m] for m in READS)
        commits = sum(grpc[m] for m in WRITES)
        print(
            f"| {kind} | {reads} | {commits} | {grpc['BeginTransaction']} | {grpc['Publish']}"
            f" | {verdict(kind, reads, commits)} | {local['read']} | {local['commit']}"
            f" | {verdict(kind, local['read'], local['commit'])} |"
        )
    other = {m for kind in KINDS for m in firestore[kind]} - {*READS, *WRITES, *TRANSACTIONS, "Publish"}
    if other:
        print(f"\nother calls: {sorted(other)}")
    print(f"\nReading a Firestore ledger of {SEEDED} runs (half of a route removed from routes.yaml):\n")
    print("| command | calls | aggregation queries | run documents read | target |")
    print("|---|---:|---:|---:|---|")
    for name, counted in readings.items():
        documents = counted["run documents read"]
        bound = PAGE if name.startswith("runs") else 1  # status: the oldest open claim only
        ok = "pass" if documents <= bound else "**miss**"
        calls = sum(counted.values()) - documents
        print(
            f"| {name} | {calls} | {counted['RunAggregationQuery']} | {documents}"
            f" | {ok} (≤ {bound}, never all {SEEDED}) |"
        )


if __name__ == "__main__":
    main()
