"""`handle_event`'s service: decode → route → claim → submit, recording every decision.

Ack/retry follows DESIGN.md. A permanent problem with the event (undecodable, unknown type, no
route listens there) is quarantined and acknowledged. A transient failure (ledger or backend
unavailable) is answered non-2xx so the platform redelivers. A duplicate that arrives while
another delivery holds a live claim is *not* acknowledged (429): if that holder dies, this
redelivery is what takes over. A run a limit or the pause holds back is queued (acknowledged;
`start_queued` starts it later), and a coalescing route adds the object to its window's batch.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial

from events import signatures
from events.decoders import decode
from events.errors import BadEvent, PermanentError, TransientError
from events.model import Ignored, Message, ObjectFinalized, TriggerEvent
from events.router import Routing, RunRequest, Skip
from events.routes import Rule
from functions import crashpoints, limits
from functions.answer import STATUS, Answer, quarantine
from functions.bootstrap import Services
from functions.completion import publish_result
from functions.ledger import ClaimOutcome, DecisionRecord, NewRun, Outcome, State
from functions.logs import fields, label
from functions.objects import NotReady, ready
from functions.results import iso
from pipelines.backend import CompiledPipeline, Submission
from pipelines.catalog import BATCH_BYTES_PARAMETER, BATCH_OBJECTS_PARAMETER

log = logging.getLogger("kfp_trigger.dispatch")


def handle(services: Services, attributes: Mapping[str, str], data: object, body: bytes) -> Answer:
    """Process one inbound CloudEvent. `body` is the raw request body, kept if quarantined."""
    try:
        decoded = decode(attributes, data)
    except BadEvent as exc:
        return quarantine(services, exc.reason, attributes, body, "handle_event")
    if isinstance(decoded, Ignored):
        _record(services, decoded.envelope.id, "", decoded.envelope.type, Outcome.IGNORED, decoded.reason)
        return Answer(200, {"outcome": Outcome.IGNORED, "reason": decoded.reason})

    event = decoded
    label(event_id=event.envelope.id)
    routing = services.router.route(event)
    if not routing.routed:
        reason = f"no route listens to {event.kind} {event.index!r}"
        return quarantine(services, reason, attributes, body, "handle_event")

    if isinstance(event, Message) and (unsigned := _signature_problem(services, event, routing)):
        log.warning("signature check failed", extra=fields(reason=unsigned, topic=event.topic))
        return quarantine(services, f"signature: {unsigned}", attributes, body, "handle_event")
    stale = _older_generation(services, event) if routing.requests else None
    outcomes: list[dict[str, object]] = []
    worst = 200
    for decision in routing.decisions:
        if isinstance(decision, RunRequest) and stale is None:
            outcome, detail = start_run(services, event, decision)
            worst = max(worst, STATUS[outcome])
            outcomes.append(
                {"route": decision.route, "outcome": outcome, "run_key": decision.run_key, **detail}
            )
        else:
            reason = decision.reason if isinstance(decision, Skip) else str(stale)  # a stale generation
            _record(
                services,
                event.envelope.id,
                event.key,
                event.envelope.type,
                Outcome.SKIPPED,
                reason,
                route=decision.route,
            )
            outcomes.append({"route": decision.route, "outcome": Outcome.SKIPPED, "reason": reason})
    return Answer(worst, {"event": event.key, "decisions": outcomes})


def _signature_problem(services: Services, event: Message, routing: Routing) -> str | None:
    """The first signature problem among the routes that would run this message."""
    for request in routing.requests:
        signature = services.router.by_name[request.route].signature
        if signature is not None:
            secret = os.environ.get(signature.secret, "")
            if found := signatures.problem(event, signature, secret, services.clock()):
                return found
    return None


def _older_generation(services: Services, event: TriggerEvent) -> str | None:
    """For an object: why this generation is skipped (a newer one was seen), or None."""
    if not isinstance(event, ObjectFinalized) or not event.generation:
        return None
    mark = services.ledger.raise_mark(f"{event.bucket}/{event.name}", event.generation)
    if mark > event.generation:
        return f"generation {event.generation} is older than generation {mark}, seen already"
    return None


def start_run(
    services: Services, event: TriggerEvent, request: RunRequest
) -> tuple[Outcome, dict[str, object]]:
    """Check the event's age and batch, then claim the run key and, if this delivery wins,
    start exactly one run (or queue it, or add the object to its coalescing window)."""
    pipeline = services.catalog[request.pipeline]
    envelope = event.envelope
    record = partial(
        _record, services, envelope.id, event.key, envelope.type, route=request.route, run_key=request.run_key
    )
    if (too_old := limits.too_old(services, request.route, envelope.time)) is not None:
        record(Outcome.SKIPPED, too_old)
        return Outcome.SKIPPED, {"reason": too_old}

    params = dict(request.params)
    if request.manifest and isinstance(event, ObjectFinalized):
        try:
            params |= _batch_params(services, event, pipeline.inputs)
        except NotReady as exc:  # nothing claimed: the redelivery checks again
            record(Outcome.RETRY, f"batch not ready: {exc}")
            return Outcome.RETRY, {"reason": f"batch not ready: {exc}"}
        except BadEvent as exc:
            record(Outcome.SKIPPED, f"bad manifest: {exc.reason}")
            return Outcome.SKIPPED, {"reason": f"bad manifest: {exc.reason}"}
    new_run = NewRun(
        run_key=request.run_key,
        route=request.route,
        pipeline=pipeline.name,
        version=pipeline.version,
        backend=pipeline.backend,
        params=params,
        event_id=event.envelope.id,
    )
    window = limits.route_limits(services, request.route).coalesce
    if window is not None and isinstance(event, ObjectFinalized):
        return coalesce(services, event, new_run, window)
    return launch(services, new_run, pipeline, record)


def coalesce(
    services: Services, event: ObjectFinalized, run: NewRun, window: float
) -> tuple[Outcome, dict[str, object]]:
    """Add the object to its route's batch for this run key and window (aligned to the epoch).

    The batch is a QUEUED run created by the window's first event; it starts when the window
    closes, with every object in `batch_objects`. An object that arrives after its window's run
    was taken (a late redelivery) gets a batch of its own, due at once, rather than be lost.
    """
    ledger, now = services.ledger, services.clock()
    opened = now // window * window
    member = f"gs://{event.bucket}/{event.name}"
    batch = replace(run, run_key=f"{run.run_key}@{iso(opened)}")
    ledger.open_batch(batch, opened + window, now)
    ledger.add_member(batch.run_key, member)
    current = ledger.get(batch.run_key)
    if current is None or current.state is not State.QUEUED:
        batch = replace(batch, run_key=f"{batch.run_key}+{event.key}")
        ledger.open_batch(batch, now, now)
        ledger.add_member(batch.run_key, member)
    reason = f"joined batch {batch.run_key}"
    envelope = event.envelope
    _record(
        services,
        envelope.id,
        event.key,
        envelope.type,
        Outcome.QUEUED,
        reason,
        route=run.route,
        run_key=batch.run_key,
    )
    return Outcome.QUEUED, {"batch": batch.run_key}


def launch(
    services: Services, run: NewRun, pipeline: CompiledPipeline, record: Callable[[Outcome, str], None]
) -> tuple[Outcome, dict[str, object]]:
    """Claim `run.run_key` and, if this caller wins, start it; `record` writes the decision."""
    claim = services.ledger.claim(run, services.clock(), services.settings.claim_lease_seconds)
    if claim.outcome is ClaimOutcome.DONE:
        state = claim.record.state if claim.record else ""
        record(Outcome.DUPLICATE, f"run key already {state}")
        return Outcome.DUPLICATE, {"state": str(state)}
    if claim.outcome is ClaimOutcome.BUSY:
        record(Outcome.BUSY, "another delivery holds a live claim")
        return Outcome.BUSY, {"retry_after": round(claim.retry_after, 1)}
    return start_claimed(services, run, pipeline, claim.attempt, record)


def start_claimed(
    services: Services,
    run: NewRun,
    pipeline: CompiledPipeline,
    attempt: int,
    record: Callable[[Outcome, str], None],
) -> tuple[Outcome, dict[str, object]]:
    """Start a run this caller holds the claim of (`attempt`): queue it if a limit or the pause
    holds it back, else submit exactly one run."""
    ledger = services.ledger
    if (wait := limits.admit(services, run)) is not None:
        ledger.queue(run.run_key, attempt, wait, services.clock())
        record(Outcome.QUEUED, wait)
        return Outcome.QUEUED, {"reason": wait}
    crashpoints.reached(crashpoints.AFTER_CLAIM)
    backend = services.backends[pipeline.backend]
    try:
        # A taken-over claim may have submitted before its holder died: look before submitting.
        run_id = backend.find(run.run_key) if attempt > 1 else None
        run_id = run_id or backend.submit(Submission(run.run_key, run.route, pipeline, run.params))
    except TransientError as exc:
        ledger.release(run.run_key, attempt)
        record(Outcome.RETRY, str(exc))
        return Outcome.RETRY, {"reason": str(exc)}
    except PermanentError as exc:
        if ledger.finish(run.run_key, State.FAILED, {"error": str(exc)}, services.clock()):
            limits.ended(services, run.route, run.run_key)
        record(Outcome.FAILED, str(exc))
        publish_result(services, run.run_key)
        return Outcome.FAILED, {"reason": str(exc)}
    crashpoints.reached(crashpoints.AFTER_SUBMIT)
    if not ledger.mark_submitted(run.run_key, attempt, run_id, services.clock()):
        # Our lease ran out mid-submit and another delivery took over: it adopts this run by key.
        log.warning("claim taken over while submitting", extra=fields(run_key=run.run_key, run_id=run_id))
    record(Outcome.RUN, f"submitted as {run_id}")
    crashpoints.reached(crashpoints.AFTER_RECORD)
    return Outcome.RUN, {"run_id": run_id}


def start_queued(services: Services) -> int:
    """Start the queued runs that may start now, oldest first; how many were started.

    Called when a run ends, by every reconcile pass and by `resume`. A route whose limit is
    reached is not tried again in the same pass; nothing is when submissions are paused.
    """
    started = 0
    blocked: set[str] = set()
    lease = services.settings.claim_lease_seconds
    for queued in services.ledger.queued(services.clock()):
        if queued.route in blocked:
            continue
        claim = services.ledger.take(queued.run_key, services.clock(), lease)
        if claim.outcome is not ClaimOutcome.WON:
            continue
        record = partial(
            _record, services, queued.event_id, "", "queue", route=queued.route, run_key=queued.run_key
        )
        params = dict(queued.params)
        if members := services.ledger.members(queued.run_key):
            params[BATCH_OBJECTS_PARAMETER] = members
        outcome, detail = start_claimed(
            services, replace(queued, params=params), pipeline_for(services, queued), claim.attempt, record
        )
        if outcome is Outcome.RUN:
            started += 1
        elif outcome is Outcome.RETRY:
            services.ledger.queue(queued.run_key, claim.attempt, str(detail["reason"]), services.clock())
        elif outcome is Outcome.QUEUED:
            if limits.holds_every_route(str(detail["reason"])):
                break
            blocked.add(queued.route)
    return started


def pipeline_for(services: Services, run: NewRun) -> CompiledPipeline:
    """The catalog entry a recorded run was decided with, or its route's current one if that
    version is no longer loaded."""
    for pipeline in services.catalog.values():
        if (pipeline.name, pipeline.version, pipeline.backend) == (run.pipeline, run.version, run.backend):
            return pipeline
    return services.catalog[_rule_of(services, run).pipeline]


def _rule_of(services: Services, run: NewRun) -> Rule:
    """The route a recorded run belongs to.

    Raises:
        PermanentError: routes.yaml no longer has that route.
    """
    rule = services.router.by_name.get(run.route)
    if rule is None:
        raise PermanentError(f"route {run.route!r} of run {run.run_key!r} is not in routes.yaml any more")
    return rule


RERUN_SUFFIX = "~rerun-"


def rerun(services: Services, run_key: str) -> tuple[str, Outcome, dict[str, object]]:
    """Start a fresh run of a recorded run deliberately, under a new run key derived from the
    old one (`<run key>~rerun-<n>`, the first n not taken), so deduplication cannot block it.

    It runs what the route runs now (its current pipeline version and backend) with the
    recorded parameters. Returns the new run key, the outcome and its detail.

    Raises:
        PermanentError: no such run, or its route is no longer in routes.yaml.
    """
    original = services.ledger.get(run_key)
    if original is None:
        raise PermanentError(f"no run {run_key!r} in the ledger")
    rule = _rule_of(services, original)
    pipeline = services.catalog[rule.pipeline]
    for number in itertools.count(1):
        new_key = f"{run_key}{RERUN_SUFFIX}{number}"
        if services.ledger.get(new_key) is not None:
            continue
        fresh = NewRun(
            run_key=new_key,
            route=rule.name,
            pipeline=pipeline.name,
            version=pipeline.version,
            backend=pipeline.backend,
            params=original.params,
            event_id=original.event_id,
        )
        record = partial(_record, services, original.event_id, "", "rerun", route=rule.name, run_key=new_key)
        outcome, detail = launch(services, fresh, pipeline, record)
        if outcome is not Outcome.DUPLICATE:  # a concurrent rerun took this number: try the next
            return new_key, outcome, detail
    raise AssertionError("unreachable")


def _batch_params(services: Services, event: ObjectFinalized, inputs: Mapping[str, str]) -> dict[str, object]:
    """The batch's objects and size, for the pipeline inputs that ask for them.

    Raises:
        NotReady: some listed objects are missing or empty.
        BadEvent: the manifest is not a manifest.
    """
    if services.objects is None:
        raise NotReady("no object store is configured to check the batch")
    batch = ready(services.objects, event.bucket, event.name)
    values = {BATCH_OBJECTS_PARAMETER: list(batch.uris), BATCH_BYTES_PARAMETER: batch.total_bytes}
    return {name: value for name, value in values.items() if name in inputs}


def _record(
    services: Services,
    event_id: str,
    event_key: str,
    event_type: str,
    outcome: Outcome,
    reason: str = "",
    *,
    route: str = "",
    run_key: str = "",
) -> None:
    services.ledger.record(
        DecisionRecord(services.clock(), event_id, event_key, event_type, outcome, route, reason, run_key)
    )
    log.info("decision recorded", extra=fields(outcome=outcome, route=route, run_key=run_key, reason=reason))
