"""Decide, then act: every check after routing, as a pure plan.

`gather` reads what the checks need in one round trip to the ledger (the object's generation
high-water mark, the runs its run keys name, the pause flag) and a manifest's batch; `decide`
is pure: from the event, its routing, the routes, the catalog and those facts, it returns the
plan — `Refuse` the whole event (quarantine), or one step per route: `Skip`, `Retry`, `Join` a
coalescing window, `Launch` a run, or `Arrive`: record a join's part.
`intake` carries the plan out. Tests of decisions need no I/O: build `Facts` and call `decide`.

The checks, in order: the producer's signature (a Pub/Sub route that requires one), the
object's generation (an older generation than one already seen is skipped), the event's age
(`limits.max_age`), the batch's readiness (`batch.manifest`), then the coalescing window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events import signatures
from events.errors import BadEvent, Refused
from events.model import Message, ObjectFinalized, TriggerEvent
from events.router import PartArrival, Router, Routing, RunRequest
from events.rules import Rule, pipeline_of
from functions.service import arrivals, limits
from functions.service.batches import Batch, NotReady, ready
from functions.service.ports import ObjectStore, Services
from functions.service.records import MarkRaise, NewRun, Reading, SettleWindow
from pipelines.backend import CompiledPipeline
from pipelines.parameters import BATCH_BYTES_PARAMETER, BATCH_MANIFEST_PARAMETER, BATCH_OBJECTS_PARAMETER


@dataclass(frozen=True, slots=True)
class Facts:
    """What was read before deciding, and when."""

    now: float
    secrets: Mapping[str, str] = field(default_factory=dict)  # signature secrets, by variable name
    generation_mark: int = 0  # the highest generation of this object seen before
    batch: Batch | NotReady | BadEvent | Refused | None = None  # the manifest's batch, or why there is none
    reading: Reading | None = None  # what the ledger read found (`runs.launch` uses it)

    @property
    def marks(self) -> Mapping[str, int]:
        """The marks the read found (0: never raised), by key."""
        return self.reading.marks if self.reading is not None else {}


@dataclass(frozen=True, slots=True)
class Refuse:
    """Quarantine the whole event."""

    reason: str


@dataclass(frozen=True, slots=True)
class Skip:
    route: str
    reason: str
    run_key: str = ""
    refused: bool = False  # a store refused (a grant is missing): an operator must hear of it


@dataclass(frozen=True, slots=True)
class Retry:
    """Nothing is claimed; the redelivery checks again."""

    route: str
    reason: str
    run_key: str


@dataclass(frozen=True, slots=True)
class Join:
    """Add the object or message to its route's batch: a coalescing window (`float`: aligned to
    the epoch) or a settle window (`batches.gather`)."""

    run: NewRun
    window: float | SettleWindow


@dataclass(frozen=True, slots=True)
class Launch:
    run: NewRun
    pipeline: CompiledPipeline


@dataclass(frozen=True, slots=True)
class Arrive:
    """Record a join's part in its key's window (`service/joins.py`)."""

    route: str
    part: PartArrival


Step = Skip | Retry | Join | Launch | Arrive
Plan = Refuse | tuple[Step, ...]


def gather(services: Services, event: TriggerEvent, routing: Routing) -> Facts:
    """Read what `decide` needs for this event: nothing unless some route would run it."""
    now = services.clock()
    if not routing.requests:
        return Facts(now, services.secrets)
    mark = generation_key(event)
    run_keys = {request.run_key for request in routing.requests}
    marks = [mark] if mark else []
    marks += arrivals.marks_to_read(services.router.by_name[request.route] for request in routing.requests)
    reading = services.store.read(now, run_keys, marks=marks, flags=[limits.PAUSED])
    batch: Batch | NotReady | BadEvent | Refused | None = None
    if isinstance(event, ObjectFinalized) and any(request.manifest for request in routing.requests):
        batch = batch_of(services.objects, event)
    return Facts(now, services.secrets, reading.marks.get(mark, 0), batch, reading)


def generation_key(event: TriggerEvent) -> str:
    """The high-water mark of an object's generations ("" for an event that has none)."""
    return f"{event.bucket}/{event.name}" if isinstance(event, ObjectFinalized) and event.generation else ""


def raised(event: TriggerEvent, facts: Facts) -> tuple[MarkRaise, ...]:
    """The generation mark this event raises (written with its first commit, `Riders.marks`):
    an atomic max, so concurrent deliveries of two generations leave the newest. One decided
    before a newer generation's mark was written still runs, as before that mark existed."""
    key = generation_key(event)
    if not key or not isinstance(event, ObjectFinalized) or event.generation <= facts.generation_mark:
        return ()
    return (MarkRaise(key, event.generation, facts.now),)


def batch_of(objects: ObjectStore | None, event: ObjectFinalized) -> Batch | NotReady | BadEvent | Refused:
    """The manifest's batch, or why there is none (yet)."""
    if objects is None:
        return NotReady("no object store is configured to check the batch")
    try:
        return ready(objects, event.bucket, event.name)
    except (NotReady, BadEvent, Refused) as exc:
        return exc


def decide(
    event: TriggerEvent,
    routing: Routing,
    router: Router,
    catalog: Mapping[str, CompiledPipeline],
    facts: Facts,
) -> Plan:
    """The plan for a routed event. Pure."""
    if isinstance(event, Message) and (unsigned := _signature_problem(event, routing, router, facts)):
        return Refuse(f"signature: {unsigned}")
    stale = _older_generation(event, facts)
    steps: list[Step] = []
    for decision in routing.decisions:
        if not isinstance(decision, RunRequest):
            steps.append(Skip(decision.route, decision.reason))
        elif stale is not None:
            steps.append(Skip(decision.route, stale))
        else:
            steps.append(_step(event, decision, router.listener(decision), catalog, facts))
    return tuple(steps)


def _step(
    event: TriggerEvent,
    request: RunRequest,
    rule: Rule,
    catalog: Mapping[str, CompiledPipeline],
    facts: Facts,
) -> Step:
    if (too_old := limits.too_old(rule.limits, event.envelope.time, facts.now)) is not None:
        return Skip(request.route, too_old, request.run_key)
    pipeline = catalog[pipeline_of(rule, request.run_key)]
    params = dict(request.params)
    if request.manifest and isinstance(event, ObjectFinalized):
        if isinstance(facts.batch, BadEvent):
            return Skip(request.route, f"bad manifest: {facts.batch.reason}", request.run_key)
        if isinstance(facts.batch, Refused):
            return Skip(request.route, f"cannot read the batch: {facts.batch.reason}", request.run_key, True)
        if not isinstance(facts.batch, Batch):
            return _not_ready(event, request, rule, facts)
        if request.part is not None:  # a join's part: it arrives once its batch is complete
            return Arrive(request.route, request.part)
        params |= {  # recorded with the run; the engine gets those the pipeline declares
            BATCH_OBJECTS_PARAMETER: list(facts.batch.uris),
            BATCH_BYTES_PARAMETER: facts.batch.total_bytes,
            BATCH_MANIFEST_PARAMETER: f"gs://{event.bucket}/{event.name}",
        }
    if request.part is not None:
        return Arrive(request.route, request.part)
    run = NewRun(
        run_key=request.run_key,
        route=request.route,
        pipeline=pipeline.name,
        version=pipeline.version,
        backend=pipeline.backend,
        params=params,
        event_id=event.envelope.id,
        concurrency=request.concurrency,
        partition=request.partition,
        fresh_key=request.fresh_key,
    )
    if rule.limits.coalesce is not None and isinstance(event, ObjectFinalized):
        return Join(run, rule.limits.coalesce)
    if (settle := rule.limits.settle) is not None and isinstance(event, ObjectFinalized | Message):
        return Join(run, SettleWindow(settle.quiet, settle.max_wait, settle.max_items))
    return Launch(run, pipeline)


def _not_ready(event: TriggerEvent, request: RunRequest, rule: Rule, facts: Facts) -> Step:
    """A manifest's batch is incomplete: retry (the platform redelivers) until `batch.max_wait`
    after the event's time, then record the event skipped for good. Without a CloudEvent time
    (Eventarc always sets one) the platform's retry horizon is the only bound."""
    waited = facts.now - event.envelope.time.timestamp() if event.envelope.time else 0.0
    if waited > rule.max_wait:
        reason = f"incomplete batch after {waited:.0f} s (batch.max_wait {rule.max_wait:g} s): {facts.batch}"
        return Skip(request.route, reason, request.run_key)
    return Retry(request.route, f"batch not ready: {facts.batch}", request.run_key)


def _signature_problem(event: Message, routing: Routing, router: Router, facts: Facts) -> str | None:
    """The first signature problem among the routes that would run this message."""
    for request in routing.requests:
        signature = router.listener(request).signature
        if signature is not None:
            secret = facts.secrets.get(signature.secret, "")
            if found := signatures.problem(event, signature, secret, facts.now):
                return found
    return None


def _older_generation(event: TriggerEvent, facts: Facts) -> str | None:
    """For an object: why this generation is skipped (a newer one was seen), or None."""
    if isinstance(event, ObjectFinalized) and event.generation and facts.generation_mark > event.generation:
        return f"generation {event.generation} is older than generation {facts.generation_mark}, seen already"
    return None
