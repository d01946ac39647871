"""The ports the use cases talk through, and `Services`: every port, wired once by bootstrap.

Each port has its adapters in `functions/adapters/` (and `pipelines/` for backends) and a
recording fake in `tests/support/fakes.py`; the use cases import only this module, `ledger` and `records`.

- `RunStore`, `RunQueue`, `DecisionLog`, `Quotas` (`service.ledger`): the durable record of runs
  and decisions; one `Ledger` adapter is all four (`SqliteLedger`, `FirestoreLedger`).
- `Sink`: where results and quarantined events go (`JsonlSink`, `PubsubSink`).
- `ObjectStore`: what the trigger reads of Cloud Storage (`LocalObjectStore`, `GcsObjectStore`).
- `DeadLetters`: deliveries that ran out of attempts (`PubsubDeadLetters`).
- `Verifier`: who may call the targets (`adapters.oidc.Verifier`).
- `Telemetry`: metrics and traces (`adapters.otel.OtelTelemetry`; `Untraced` when off).
- `Backend` (pipelines.backend): where runs start (`local`, `kfp`, `vertex`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from events.errors import KfpTriggerError
from events.schema_limits import GlobalLimits
from functions.service.ledger import DecisionLog, Ledger, Quotas, RunQueue, RunStore
from functions.service.records import StoredObject
from pipelines.backend import Backend, CompiledPipeline

if TYPE_CHECKING:
    from events.router import Router
    from functions.settings import Settings


class Sink(Protocol):
    def publish(self, document: Mapping[str, object]) -> None:
        """Deliver one document; return only once it is delivered (raise TransientError if not)."""
        ...


class ObjectStore(Protocol):
    def read(self, bucket: str, name: str, limit: int) -> bytes | None:
        """The object's bytes (at most `limit`), or None if it does not exist."""
        ...

    def size(self, bucket: str, name: str) -> int | None:
        """The object's size in bytes, or None if it does not exist."""
        ...

    def list(self, bucket: str, prefix: str, limit: int) -> list[str]:
        """The names of at most `limit` objects whose names start with `prefix`, sorted."""
        ...

    def objects(self, bucket: str, prefix: str) -> Iterator[StoredObject]:
        """Every object whose name starts with `prefix`, in name order, with what its finalize
        event carries (listed page by page: a bucket may hold millions)."""
        ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that ran out of attempts, as the dead-letter subscription holds it."""

    handle: str  # what settles it (the Pub/Sub ack id)
    message_id: str
    source: str  # the short name of the subscription that could not deliver it
    attempts: int
    body: Mapping[str, Any]  # the push body that subscription posted


class DeadLetters(Protocol):
    def pull(self, limit: int) -> list[DeadLetter]:
        """At most `limit` dead letters, each held until settled (raise TransientError if the
        subscription cannot be read)."""
        ...

    def settle(self, letter: DeadLetter, done: bool) -> None:
        """`done`: acknowledge it, it is accounted for; else hand it back for a later pass."""
        ...


class AuthError(KfpTriggerError):
    """The caller is not let in; `status` is 401 (who are you?), 403 (not you) or 503."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Verifier(Protocol):
    def verify(self, authorization: str, target: str) -> object:
        """Check an `Authorization` header value for a request to `target`.

        Raises:
            AuthError: the caller is not let in.
        """
        ...


class Telemetry(Protocol):
    """Metrics and traces (OpenTelemetry: `functions/adapters/otel.py`).

    A trace context travels as a W3C `traceparent` string: a run keeps the one of the span that
    decided it (`NewRun.trace`), its submit and its result's publishing are spans under it, and
    the result CloudEvent carries it, so a product's request, its run and its result are one
    trace. Metric attributes take bounded values only (sources, route names, outcomes, states).
    """

    recording: bool  # False: nothing is recorded; skip work done only to measure

    def request(self, target: str, headers: Mapping[str, str]) -> AbstractContextManager[object]:
        """The span of one request to `target`, child of its `traceparent` (or Cloud Trace)
        header; exported when the block ends."""
        ...

    def span(self, name: str, parent: str = "", **attributes: str) -> AbstractContextManager[object]:
        """A span, child of `parent` (a traceparent; "": of the current span)."""
        ...

    def current(self) -> str:
        """The traceparent of the current span ("" when there is none)."""
        ...

    def event(self, source: str, route: str, outcome: str) -> None:
        """Count one decision about an inbound event."""
        ...

    def run(self, route: str, backend: str, state: str, seconds: float | None = None) -> None:
        """Count a run reaching `state`; `seconds`: for SUBMITTED, since its event arrived (queue
        and window included), for a terminal state, since it was submitted."""
        ...

    def gauges(self, queued: int, open_joins: int) -> None:
        """Set the queue depth and the number of open join windows (each reconcile pass)."""
        ...


class Untraced:
    """`Telemetry` that records nothing (KFP_TRIGGER_TELEMETRY=off, the default)."""

    recording = False

    def request(self, target: str, headers: Mapping[str, str]) -> AbstractContextManager[object]:
        return nullcontext()

    def span(self, name: str, parent: str = "", **attributes: str) -> AbstractContextManager[object]:
        return nullcontext()

    def current(self) -> str:
        return ""

    def event(self, source: str, route: str, outcome: str) -> None:
        pass

    def run(self, route: str, backend: str, state: str, seconds: float | None = None) -> None:
        pass

    def gauges(self, queued: int, open_joins: int) -> None:
        pass


def never_crash(point: str) -> None:
    """The production crash hook: reaching a crash point does nothing."""


@dataclass(frozen=True)
class Services:
    """Every port a use case needs, built once per process by `functions.bootstrap`."""

    settings: Settings
    router: Router
    catalog: Mapping[str, CompiledPipeline]
    store: RunStore
    queue: RunQueue
    decisions: DecisionLog
    quotas: Quotas
    backends: Mapping[str, Backend]
    results: Sink
    quarantine: Sink
    alerts: tuple[Sink, ...] = ()  # every alert goes to each (service/alerts.py)
    objects: ObjectStore | None = None  # for batch readiness
    dead_letters: DeadLetters | None = None  # deliveries that ran out of attempts (service/dead_letters.py)
    verifier: Verifier | None = None  # None: no authentication (KFP_TRIGGER_AUTH=none)
    clock: Callable[[], float] = field(default=time.time)
    limits: GlobalLimits = field(default_factory=GlobalLimits)  # routes.yaml's top-level limits
    secrets: Mapping[str, str] = field(default_factory=dict)  # signature secrets, by variable name
    crash: Callable[[str], None] = never_crash  # the crash tests' hook (service/crashpoints.py)
    telemetry: Telemetry = field(default_factory=Untraced)


def ledger_ports(ledger: Ledger) -> dict[str, Any]:
    """`Services` fields for one ledger that serves every ledger port."""
    return {"store": ledger, "queue": ledger, "decisions": ledger, "quotas": ledger}
