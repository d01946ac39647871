"""`handle_event`'s service: decode → route → claim → submit, recording every decision.

Ack/retry follows DESIGN.md. A permanent problem with the event (undecodable, unknown type, no
route listens there) is quarantined and acknowledged. A transient failure (ledger or backend
unavailable) is answered non-2xx so the platform redelivers. A duplicate that arrives while
another delivery holds a live claim is *not* acknowledged (429): if that holder dies, this
redelivery is what takes over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

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
from pipelines.backend import Submission
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
    ledger = services.ledger

    def record(outcome: Outcome, reason: str = "") -> None:
        _record(
            services,
            event.envelope.id,
            event.key,
            event.envelope.type,
            outcome,
            route=request.route,
            reason=reason,
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
    claim = ledger.claim(
        NewRun(
            run_key=request.run_key,
            route=request.route,
            pipeline=pipeline.name,
            version=pipeline.version,
            backend=pipeline.backend,
            params=params,
            event_id=event.envelope.id,
        ),
        services.clock(),
        services.settings.claim_lease_seconds,
    )

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
        run_id = backend.find(request.run_key) if claim.attempt > 1 else None
        run_id = run_id or backend.submit(Submission(request.run_key, request.route, pipeline, params))
    except TransientError as exc:
        ledger.release(request.run_key, claim.attempt)
        record(Outcome.RETRY, str(exc))
        return Outcome.RETRY, {"reason": str(exc)}
    except PermanentError as exc:
        ledger.finish(request.run_key, State.FAILED, {"error": str(exc)}, services.clock())
        record(Outcome.FAILED, str(exc))
        publish_result(services, request.run_key)
        return Outcome.FAILED, {"reason": str(exc)}
    crashpoints.reached(crashpoints.AFTER_SUBMIT)
    if not ledger.mark_submitted(request.run_key, claim.attempt, run_id, services.clock()):
        # Our lease ran out mid-submit and another delivery took over: it adopts this run by key.
        log.warning("claim on %r was taken over while submitting %r", request.run_key, run_id)
    record(Outcome.RUN, f"submitted as {run_id}")
    log.info("run submitted: %r as %r", request.run_key, run_id)
    crashpoints.reached(crashpoints.AFTER_RECORD)
    return Outcome.RUN, {"run_id": run_id}


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
    *,
    route: str = "",
    reason: str = "",
    run_key: str = "",
) -> None:
    services.ledger.record(
        DecisionRecord(services.clock(), event_id, event_key, event_type, outcome, route, reason, run_key)
    )
