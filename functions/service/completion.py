"""`handle_completion` and `reconcile`: a run's end → its terminal state (once) → its result.

A completion notice (`pipelines.notice.Notice`, from the pipeline's exit handler in production,
from the local runner on the embedded default) is only a hint to look: anything that may publish
to the completions topic could forge one. So a notice changes nothing by itself: for a
SUBMITTED run, `runs.complete` asks the engine (for the run id the ledger recorded) and finishes
the run only if the engine reports it ended; while it does not (an exit handler runs before its
run has ended), the notice asks to be delivered again later. A notice for a run that is queued
or being submitted is recorded and changes nothing. Every notice is recorded in the trail.
`reconcile` is the backstop when notices are lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from events.decoders import decode
from events.errors import BadEvent
from events.model import Message
from functions.logs import fields, label
from functions.service import joins, passes, runs, trail
from functions.service.ports import Services
from functions.service.quarantine import quarantine
from functions.service.records import DecisionRecord, Handled, Outcome, Riders, RunRecord
from functions.service.results import publish_result
from pipelines.backend import RunState
from pipelines.notice import Notice

log = logging.getLogger("kfp_trigger.completion")
STALE_CLAIM_MESSAGE = "claim past its lease"  # a Cloud Monitoring alert counts these lines


def decode_notice(attributes: Mapping[str, str], data: object) -> Notice:
    """The notice a completions-topic CloudEvent carries.

    Raises:
        BadEvent: it is not a Pub/Sub message with a notice as its JSON body.
    """
    decoded = decode(attributes, data)
    if not isinstance(decoded, Message) or decoded.payload is None:
        raise BadEvent("a completion notice is a Pub/Sub message with a JSON object body")
    return Notice.decode(decoded.payload)


def handle(services: Services, attributes: Mapping[str, str], data: object, body: bytes) -> Handled:
    try:
        notice = decode_notice(attributes, data)
    except BadEvent as exc:
        return quarantine(services, exc.reason, attributes, body, "handle_completion")
    label(run_key=notice.run_key)
    run = services.store.get(notice.run_key)
    if run is None:
        return quarantine(
            services, "completion notice for an unknown run key", attributes, body, "handle_completion"
        )
    label(event_id=run.event_id)  # the event that started it: one filter shows the whole story

    def decision(outcome: Outcome, reason: str) -> DecisionRecord:
        told = f"notice says {notice.state[:40]!r}: {reason}"
        at, notice_id = services.clock(), attributes.get("id", "")
        return DecisionRecord(at, notice_id, "", "completion notice", outcome, run.route, told, run.run_key)

    ended: list[DecisionRecord] = []  # the notice's decision, when it rode on the run's end

    def told(state: RunState) -> Riders:
        ended.append(decision(Outcome.COMPLETED, f"the engine reports {state}"))
        return Riders(decisions=(ended[-1],))

    outcome, reason, state = _look(services, run, told)
    if outcome is Outcome.COMPLETED and ended:
        trail.logged(ended[0])
    else:
        trail.written(services, decision(outcome, reason))
    return Handled((outcome,), {"run_key": run.run_key, "state": str(state), "reason": reason})


def _look(
    services: Services, run: RunRecord, told: Callable[[RunState], Riders]
) -> tuple[Outcome, str, RunState]:
    """Act on a notice for `run`: what happened, why, and the run's state after. `told`: the
    notice's decision, written with the run's end if it ends now."""
    if run.state is RunState.QUEUED:
        return Outcome.SKIPPED, "the run has not started: the notice changes nothing", run.state
    if run.state is RunState.CLAIMED:
        return Outcome.RETRY, "the run is being submitted: deliver the notice again later", run.state
    report = passes.Pass()
    ended = None
    with passes.isolated(services, run, report, "looking up its status"):
        ended = runs.complete(services, run, told)  # a run ended already is not told again
    if report.skipped:  # left for a redelivery; recorded FAILED after passes.MAX_STRIKES
        return Outcome.RETRY, report.skipped[0]["reason"], run.state
    if ended is None:
        return Outcome.RETRY, "the engine reports no end yet: deliver the notice again later", run.state
    if not run.state.terminal:
        passes.start_queued(services)  # its place may let a queued run start (reconcile: once per pass)
    return Outcome.COMPLETED, f"the engine reports {ended}", ended


def reconcile(services: Services) -> passes.Pass:
    """Complete every submitted run that has ended, re-publish unpublished results, and start
    the queued runs that may start; how many runs it finished, published or started, and the
    runs it skipped with why.

    Join windows whose time is up with parts missing are recorded expired (`joins.expire`).
    First, claims whose holder died are resolved: a run found by its key is adopted, one that
    was never submitted is queued (and started at the end of the pass). Runs submitted less
    than `reconcile_grace_seconds` ago are left to their completion notice. Each run is acted
    on in isolation (`passes.isolated`): one that fails is reported, left for the next pass or,
    after `passes.MAX_STRIKES`, recorded FAILED, and the pass goes on. Safe to run concurrently
    with itself and with the notice path: every change is a compare-and-set, publishing holds a
    lease.
    """
    report = passes.Pass()
    for claim in services.store.stale_claims(services.clock()):
        with passes.isolated(services, claim, report, "resolving a claim past its lease"):
            # Its holder died (or gave up after a transient failure).
            log.warning(STALE_CLAIM_MESSAGE, extra=fields(run_key=claim.run_key, attempt=claim.attempt))
            run_id = runs.backend_of(services, claim).find(claim.run_key)
            if run_id is not None:
                runs.adopt(services, claim, run_id, "from a claim whose holder died")
            else:  # it never submitted: queue it, and it is started below like any queued run
                reason = "its claimant stopped before submitting"
                services.queue.queue(claim.run_key, claim.attempt, reason, services.clock())
    grace = services.settings.reconcile_grace_seconds
    for run in services.store.unfinished():
        if run.submitted_at is not None and run.submitted_at > services.clock() - grace:
            report.leave(run, run.state, f"submitted less than {grace:g} s ago: left to its notice")
            continue
        with passes.isolated(services, run, report, "looking up its status"):
            if runs.complete(services, run) is not None:
                report.done += 1
            else:
                report.leave(run, run.state, "not ended: its engine reports it running")
    for run in services.store.unpublished():
        with passes.isolated(services, run, report, "publishing its result"):
            report.done += publish_result(services, run.run_key)
    report.add(joins.expire(services))
    report.add(passes.start_queued(services))
    return report
