"""`handle_event`'s service: decode → route → claim → submit, recording every decision.

Ack/retry follows DESIGN.md. A permanent problem with the event (undecodable, unknown type, no
route listens there) is quarantined and acknowledged. A transient failure (ledger or backend
unavailable) is answered non-2xx so the platform redelivers. A duplicate that arrives while
another delivery holds a live claim is *not* acknowledged (429): if that holder dies, this
redelivery is what takes over.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping
from functools import partial

from events.decoders import decode
from events.errors import BadEvent, PermanentError, TransientError
from events.model import Ignored, ObjectFinalized, TriggerEvent
from events.router import RunRequest
from functions import crashpoints
from functions.answer import STATUS, Answer, quarantine
from functions.bootstrap import Services
from functions.completion import publish_result
from functions.ledger import ClaimOutcome, DecisionRecord, NewRun, Outcome, State
from functions.objects import NotReady, ready
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
        _record(
            services, decoded.envelope.id, "", decoded.envelope.type, Outcome.IGNORED, reason=decoded.reason
        )
        return Answer(200, {"outcome": Outcome.IGNORED, "reason": decoded.reason})

    event = decoded
    routing = services.router.route(event)
    if not routing.routed:
        reason = f"no route listens to {event.kind} {event.index!r}"
        return quarantine(services, reason, attributes, body, "handle_event")

    outcomes: list[dict[str, object]] = []
    worst = 200
    for decision in routing.decisions:
        if isinstance(decision, RunRequest):
            outcome, detail = start_run(services, event, decision)
            worst = max(worst, STATUS[outcome])
            outcomes.append(
                {"route": decision.route, "outcome": outcome, "run_key": decision.run_key, **detail}
            )
        else:
            _record(
                services,
                event.envelope.id,
                event.key,
                event.envelope.type,
                Outcome.SKIPPED,
                route=decision.route,
                reason=decision.reason,
            )
            outcomes.append({"route": decision.route, "outcome": Outcome.SKIPPED, "reason": decision.reason})
    return Answer(worst, {"event": event.key, "decisions": outcomes})


def start_run(
    services: Services, event: TriggerEvent, request: RunRequest
) -> tuple[Outcome, dict[str, object]]:
    """Check the batch if there is one, claim the run key and, if this delivery wins, submit
    exactly one run."""
    pipeline = services.catalog[request.pipeline]

    record = partial(
        _record,
        services,
        event.envelope.id,
        event.key,
        event.envelope.type,
        route=request.route,
        run_key=request.run_key,
    )

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
    return launch(services, new_run, pipeline, record)


def launch(
    services: Services, run: NewRun, pipeline: CompiledPipeline, record: Callable[[Outcome, str], None]
) -> tuple[Outcome, dict[str, object]]:
    """Claim `run.run_key` and, if this caller wins, submit exactly one run; `record` writes
    the decision to the trail."""
    ledger = services.ledger
    claim = ledger.claim(run, services.clock(), services.settings.claim_lease_seconds)
    if claim.outcome is ClaimOutcome.DONE:
        state = claim.record.state if claim.record else ""
        record(Outcome.DUPLICATE, f"run key already {state}")
        return Outcome.DUPLICATE, {"state": str(state)}
    if claim.outcome is ClaimOutcome.BUSY:
        record(Outcome.BUSY, "another delivery holds a live claim")
        return Outcome.BUSY, {"retry_after": round(claim.retry_after, 1)}

    crashpoints.reached(crashpoints.AFTER_CLAIM)
    backend = services.backends[pipeline.backend]
    try:
        # A taken-over claim may have submitted before its holder died: look before submitting.
        run_id = backend.find(run.run_key) if claim.attempt > 1 else None
        run_id = run_id or backend.submit(Submission(run.run_key, run.route, pipeline, run.params))
    except TransientError as exc:
        ledger.release(run.run_key, claim.attempt)
        record(Outcome.RETRY, str(exc))
        return Outcome.RETRY, {"reason": str(exc)}
    except PermanentError as exc:
        ledger.finish(run.run_key, State.FAILED, {"error": str(exc)}, services.clock())
        record(Outcome.FAILED, str(exc))
        publish_result(services, run.run_key)
        return Outcome.FAILED, {"reason": str(exc)}
    crashpoints.reached(crashpoints.AFTER_SUBMIT)
    if not ledger.mark_submitted(run.run_key, claim.attempt, run_id, services.clock()):
        # Our lease ran out mid-submit and another delivery took over: it adopts this run by key.
        log.warning("claim on %r was taken over while submitting %r", run.run_key, run_id)
    record(Outcome.RUN, f"submitted as {run_id}")
    log.info("run submitted: %r as %r", run.run_key, run_id)
    crashpoints.reached(crashpoints.AFTER_RECORD)
    return Outcome.RUN, {"run_id": run_id}


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
    rule = next((rule for rule in services.router.rules if rule.name == original.route), None)
    if rule is None:
        raise PermanentError(f"route {original.route!r} of run {run_key!r} is not in routes.yaml any more")
    pipeline = services.catalog[rule.pipeline]
    for number in itertools.count(1):
        new_key = f"{run_key}{RERUN_SUFFIX}{number}"
        if services.ledger.get(new_key) is not None:
            continue
        fresh = NewRun(
            new_key,
            rule.name,
            pipeline.name,
            pipeline.version,
            pipeline.backend,
            original.params,
            original.event_id,
        )

        def record(outcome: Outcome, reason: str, key: str = new_key) -> None:
            _record(
                services, original.event_id, "", "rerun", outcome, route=rule.name, reason=reason, run_key=key
            )

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
