"""`handle_completion`'s service: a run's end → its terminal state (once) → its result.

A completion notice is a Pub/Sub message `{run_key, state, ...}` (from the pipeline's exit
handler in production, from the local runner on the embedded default). The backend's own status
is asked for the details (times, metrics, outputs); its terminal state wins over the notice's.
Terminal states are absorbing, so repeated or late notices change nothing, and the result is
published by one caller at a time (`Ledger.begin_publish`) until it is marked published.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from events import jsonvalues as jv
from events.decoders import decode
from events.errors import BadEvent
from events.model import Message
from functions import crashpoints, limits
from functions.answer import Answer, quarantine
from functions.ledger import DecisionRecord, Outcome, RunRecord, State
from functions.logs import fields, label
from functions.objects import metrics_at
from functions.results import result_event

if TYPE_CHECKING:
    from functions.bootstrap import Services

log = logging.getLogger("kfp_trigger.completion")
STALE_CLAIM_MESSAGE = "claim past its lease"  # a Cloud Monitoring alert counts these lines

# Every engine's word for an ended run. KFP's exit handler says COMPLETE (the MLMD execution
# state); Vertex says CANCELLED; KFP runs say CANCELED.
TERMINAL_STATES: Mapping[str, State] = {
    "SUCCEEDED": State.SUCCEEDED,
    "COMPLETE": State.SUCCEEDED,
    "FAILED": State.FAILED,
    "CANCELED": State.CANCELED,
    "CANCELLED": State.CANCELED,
    "SKIPPED": State.SKIPPED,
}


@dataclass(frozen=True, slots=True)
class Notice:
    run_key: str
    state: str


def normalise(state: str) -> State | None:
    """The terminal `State` an engine's state name stands for, or None if it is not terminal."""
    return TERMINAL_STATES.get(state.strip().upper().removeprefix("PIPELINE_STATE_"))


def decode_notice(attributes: Mapping[str, str], data: object) -> Notice:
    decoded = decode(attributes, data)
    if not isinstance(decoded, Message) or decoded.payload is None:
        raise BadEvent("a completion notice is a Pub/Sub message with a JSON object body")
    return Notice(
        run_key=jv.text(decoded.payload, "run_key", "notice"),
        state=jv.text(decoded.payload, "state", "notice"),
    )


def handle(services: Services, attributes: Mapping[str, str], data: object, body: bytes) -> Answer:
    try:
        notice = decode_notice(attributes, data)
    except BadEvent as exc:
        return quarantine(services, exc.reason, attributes, body, "handle_completion")
    label(run_key=notice.run_key)
    run = services.ledger.get(notice.run_key)
    if run is None:
        return quarantine(
            services, "completion notice for an unknown run key", attributes, body, "handle_completion"
        )
    label(event_id=run.event_id)  # the event that started it: one filter shows the whole story
    state = complete(services, run, hint=normalise(notice.state))
    if state is not None:
        from functions.dispatch import start_queued

        start_queued(services)  # its place may let a queued run start (reconcile does it once per pass)
    return Answer(200, {"run_key": run.run_key, "state": str(state) if state else "open"})


def complete(services: Services, run: RunRecord, hint: State | None = None) -> State | None:
    """Finish `run` if it has ended and publish its result; the state it ended in, or None.

    The backend is asked first; `hint` (the notice's state) decides only when the backend does
    not report an end yet (for example an exit handler that fires before the engine's status
    catches up).
    """
    details: dict[str, object] = {}
    state = run.state if run.state.terminal else None
    backend = services.backends[run.backend]
    # A run still CLAIMED may have been submitted by a claimant that died before recording it.
    run_id = run.run_id
    if run_id is None and state is None:
        run_id = backend.find(run.run_key)
        if run_id is not None:
            adopt(services, run, run_id, "found by its run key when it ended")
    if state is None and run_id is not None:
        status = backend.status(run_id)
        metrics = dict(status.metrics)
        if not metrics and services.objects is not None:  # a cluster keeps values in its metadata store
            metrics = metrics_at(services.objects, status.outputs)
        details = {
            "started_at": status.started_at,
            "finished_at": status.finished_at,
            "metrics": metrics,
            "outputs": dict(status.outputs),
            "error": status.error,
        }
        state = normalise(status.state)
    state = state or hint
    if state is None:
        return None
    if services.ledger.finish(run.run_key, state, details, services.clock()):
        limits.ended(services, run.route, run.run_key)
        services.ledger.record(
            DecisionRecord(
                services.clock(),
                run.event_id,
                "",
                "completion",
                Outcome.COMPLETED,
                run.route,
                f"run ended {state}",
                run.run_key,
            )
        )
    crashpoints.reached(crashpoints.AFTER_TERMINAL)
    publish_result(services, run.run_key)
    return state


def publish_result(services: Services, run_key: str) -> bool:
    """Publish a terminal run's result unless it is published already (or being published)."""
    # A publisher that dies holds the right to publish for one lease, as a claimant does.
    lease = services.settings.claim_lease_seconds
    record = services.ledger.begin_publish(run_key, services.clock(), lease)
    if record is None:
        return False
    event = result_event(record)
    services.results.publish(event)
    crashpoints.reached(crashpoints.AFTER_PUBLISH)
    data = event["data"]
    assert isinstance(data, Mapping)
    summary = {"state": data.get("state"), "metrics": data.get("metrics"), "result_id": event["id"]}
    log.info("result published", extra=fields(run_key=run_key, **summary))
    services.ledger.mark_published(run_key, services.clock())
    return True


def adopt(services: Services, claim: RunRecord, run_id: str, why: str) -> None:
    """Record `run_id`, found on the engine by the run key, for a run the ledger has CLAIMED."""
    if services.ledger.mark_submitted(claim.run_key, claim.attempt, run_id, services.clock()):
        services.ledger.record(
            DecisionRecord(
                services.clock(),
                claim.event_id,
                "",
                "adoption",
                Outcome.RUN,
                claim.route,
                f"adopted {run_id} {why}",
                claim.run_key,
            )
        )


def reconcile(services: Services) -> int:
    """Complete every submitted run that has ended, re-publish unpublished results, and start
    the queued runs that may start.

    First, claims whose holder died are resolved: a run found by its key is adopted, one that
    was never submitted is queued (and started at the end of the pass). Runs submitted less
    than `reconcile_grace_seconds` ago are left to their completion notice. Returns how many
    runs it finished, published or started. Safe to run concurrently with itself and with the
    notice path: every change is a compare-and-set, publishing holds a lease.
    """
    done = 0
    for claim in services.ledger.stale_claims(services.clock()):
        # Its holder died (or gave up after a transient failure).
        log.warning(STALE_CLAIM_MESSAGE, extra=fields(run_key=claim.run_key, attempt=claim.attempt))
        run_id = services.backends[claim.backend].find(claim.run_key)
        if run_id is not None:
            adopt(services, claim, run_id, "from a claim whose holder died")
        else:  # it never submitted: queue it, and it is started below like any queued run
            reason = "its claimant stopped before submitting"
            services.ledger.queue(claim.run_key, claim.attempt, reason, services.clock())
    settled = services.clock() - services.settings.reconcile_grace_seconds
    for run in services.ledger.unfinished():
        if run.submitted_at is not None and run.submitted_at > settled:
            continue
        if complete(services, run) is not None:
            done += 1
    for run in services.ledger.unpublished():
        done += publish_result(services, run.run_key)
    from functions.dispatch import start_queued

    return done + start_queued(services)
