"""`handle_event`'s use case: decode → route → guards (a pure plan) → carry the plan out.

Ack/retry follows DESIGN.md. A permanent problem with the event (undecodable, unknown type, no
route listens there, a bad signature) is quarantined and acknowledged. A transient failure
(ledger or backend unavailable, a batch not ready yet) asks for a redelivery. A duplicate that
arrives while another delivery holds a live claim is *not* acknowledged (BUSY): if that holder
dies, this redelivery is what takes over. A run a limit or the pause holds back is queued
(acknowledged; `passes.start_queued` starts it later), and a coalescing route adds the object to
its window's batch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from events.decoders import decode, source_of
from events.errors import BadEvent, Refused
from events.model import Ignored, Message, ObjectFinalized, TriggerEvent
from functions.logs import fields, label
from functions.service import alerts, arrivals, batches, guards, joins, runs, trail
from functions.service.ports import Services
from functions.service.quarantine import quarantine
from functions.service.records import NO_RIDERS, Handled, KeptEvent, Outcome, Riders, data_text

log = logging.getLogger("kfp_trigger.intake")


def handle(services: Services, attributes: Mapping[str, str], data: object, body: bytes) -> Handled:
    """Process one inbound CloudEvent. `body` is the raw request body, kept if quarantined."""
    try:
        decoded = decode(attributes, data, services.settings.schedules_topic)
    except BadEvent as exc:
        source = source_of(attributes.get("type", ""))
        return _counted(services, source, _quarantined(services, exc.reason, attributes, data, body))
    if isinstance(decoded, Ignored):
        envelope = decoded.envelope
        trail.record(services, envelope.id, "", envelope.type, Outcome.IGNORED, decoded.reason)
        ignored = Handled((Outcome.IGNORED,), {"outcome": Outcome.IGNORED, "reason": decoded.reason})
        return _counted(services, source_of(envelope.type), ignored)
    envelope = decoded.envelope
    about = {"cloudevents.event_id": envelope.id, "cloudevents.event_type": envelope.type}
    with services.telemetry.span("kfp_trigger.event", trace_context(attributes, decoded), **about):
        return _counted(services, decoded.kind, _routed(services, decoded, attributes, data, body))


def trace_context(attributes: Mapping[str, str], event: TriggerEvent) -> str:
    """The event's own trace context, which its span continues: the CloudEvent's `traceparent`
    (the distributed tracing extension), or a Pub/Sub message's — `traceparent` as a publisher
    sets it, `googclient_traceparent` as google-cloud-pubsub's OpenTelemetry support does
    (pubsub_v1/open_telemetry/context_propagation.py). "": the request's span is the parent."""
    carried = [attributes.get("traceparent", "")]
    if isinstance(event, Message):
        carried += [event.attributes.get(name, "") for name in ("traceparent", "googclient_traceparent")]
    return next((value for value in carried if value), "")


def _counted(services: Services, source: str, handled: Handled) -> Handled:
    """Count the event's decisions (one per route it concerned; one without a route if none)."""
    decisions = handled.body.get("decisions")
    entries = decisions if isinstance(decisions, list) and decisions else [handled.body]
    for entry in entries:
        outcome = entry.get("outcome") or (handled.outcomes[0] if handled.outcomes else "")
        services.telemetry.event(source, str(entry.get("route", "")), str(outcome))
    return handled


def _routed(
    services: Services, event: TriggerEvent, attributes: Mapping[str, str], data: object, body: bytes
) -> Handled:
    label(event_id=event.envelope.id)
    routing = services.router.route(event)
    if not routing.routed:
        reason = f"no route listens to {event.kind} {event.index!r}"
        return _quarantined(services, reason, attributes, data, body, event.key)
    facts = guards.gather(services, event, routing)
    plan = guards.decide(event, routing, services.router, services.catalog, facts)
    if isinstance(plan, guards.Refuse):
        log.warning("event refused", extra=fields(reason=plan.reason))
        return _quarantined(services, plan.reason, attributes, data, body, event.key)
    marks = guards.raised(event, facts)
    for step in plan:
        if isinstance(step, guards.Launch | guards.Join | guards.Arrive):
            route = step.route if isinstance(step, guards.Arrive) else step.run.route
            marks += arrivals.seen(services.router.by_name[route], facts.now, facts.marks)
    # The event's own writes ride on the first commit its plan makes (issue 19: round trips).
    first = Riders(kept=_kept(services, attributes, data, ""), marks=marks)
    try:
        done = [
            _carry_out(services, event, step, facts, first if number == 0 else NO_RIDERS)
            for number, step in enumerate(plan)
        ]
    except Refused as exc:  # the ledger will never take this event's records: keep it, answer 2xx
        log.warning("event refused by the ledger", extra=fields(reason=exc.reason))
        return _quarantined(services, exc.reason, attributes, data, body, event.key)
    outcomes = tuple(outcome for outcome, _ in done)
    return Handled(outcomes, {"event": event.key, "decisions": [entry for _, entry in done]})


def _kept(services: Services, attributes: Mapping[str, str], data: object, reason: str) -> KeptEvent:
    """The event as kept to replay it (`kfp-trigger replay`), with why it was quarantined, if it was."""
    event_id = attributes.get("id", "")[:1024]
    return KeptEvent(event_id, services.clock(), dict(attributes), data_text(data), reason)


def _quarantined(
    services: Services,
    reason: str,
    attributes: Mapping[str, str],
    data: object,
    body: bytes,
    event_key: str = "",
) -> Handled:
    """Quarantine the event; `event_key`: what it is about, when it could be decoded (so that a
    search for the object finds why)."""
    kept = Riders(kept=_kept(services, attributes, data, reason))
    return quarantine(services, reason, attributes, body, "handle_event", event_key=event_key, also=kept)


def _carry_out(
    services: Services, event: TriggerEvent, step: guards.Step, facts: guards.Facts, also: Riders
) -> tuple[Outcome, dict[str, object]]:
    """Act on one step of the plan: its outcome, and its entry in the answer's `decisions`.
    `also` is written with the step's first commit."""
    envelope = event.envelope

    def note(outcome: Outcome, reason: str, route: str, run_key: str) -> None:
        trail.record(
            services,
            envelope.id,
            event.key,
            envelope.type,
            outcome,
            reason,
            route=route,
            run_key=run_key,
            also=also,
        )

    match step:
        case guards.Skip(route, reason, run_key, refused):
            note(Outcome.SKIPPED, reason, route, run_key)
            if refused:
                alerts.refused(services, route, event.key, reason)
            entry: dict[str, object] = {"route": route, "outcome": Outcome.SKIPPED, "reason": reason}
            return Outcome.SKIPPED, entry | ({"run_key": run_key} if run_key else {})
        case guards.Retry(route, reason, run_key):
            note(Outcome.RETRY, reason, route, run_key)
            return Outcome.RETRY, {
                "route": route,
                "outcome": Outcome.RETRY,
                "run_key": run_key,
                "reason": reason,
            }
        case guards.Join(run, window):
            assert isinstance(event, ObjectFinalized | Message)  # what batches (guards.decide)
            batch, joined, story = batches.gather(services, event, run, window)
            outcome = Outcome.QUEUED if joined else Outcome.DUPLICATE
            reason = f"joined batch {batch}{story}" if joined else f"already in batch {batch}"
            note(outcome, reason, run.route, batch)
            return outcome, {"route": run.route, "outcome": outcome, "run_key": run.run_key, "batch": batch}
        case guards.Arrive():
            if also:
                services.decisions.write(also)
            return joins.arrive(services, event, step)
        case guards.Launch(run, pipeline):
            record = trail.recorder(services, run, envelope.type, event.key)
            outcome, detail = runs.launch(services, run, pipeline, record, facts.reading, also)
            return outcome, {
                "route": run.route,
                "outcome": outcome,
                "run_key": run.run_key,
                **runs.answered(detail),
            }
