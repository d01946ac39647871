"""The run lifecycle, shared by events, reruns, the queue and completions.

    launch ──claim──▶ start_claimed ──admit──▶ submit ──▶ SUBMITTED ──complete──▶ terminal ──▶ result
                            └── a limit or the pause ──▶ QUEUED ──start_queued──┘

Every change is a compare-and-set in the ledger, so concurrent deliveries, reconcilers and
notices never start a run twice, and a terminal state never moves back. The engine is the
only authority on whether a run has ended (`complete`). The queue's pass is `passes.start_queued`;
an operator's rerun and cancel are in `actions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from events.errors import Gone, PermanentError, Refused, TransientError
from events.rules import Rule
from functions.logs import fields
from functions.service import alerts, crashpoints, limits, supersede
from functions.service.batches import metrics_at, metrics_under
from functions.service.ports import Services
from functions.service.records import (
    NO_RIDERS,
    Claim,
    ClaimOutcome,
    DecisionRecord,
    NewRun,
    Outcome,
    Reading,
    Riders,
    RunRecord,
    claim_rule,
)
from functions.service.results import publish_result
from functions.service.trail import Recorder, logged, recorder
from pipelines import engines
from pipelines.backend import Backend, CompiledPipeline, RunState, RunStatus, Submission
from pipelines.engines import Engine
from pipelines.parameters import BATCH_OBJECTS_PARAMETER

log = logging.getLogger("kfp_trigger.runs")

Started = tuple[Outcome, dict[str, object]]  # what happened, and details for the answer


def backend_of(services: Services, run: NewRun) -> Backend:
    """The backend a recorded run was submitted to.

    Raises:
        Gone: that backend is not configured any more (routes.yaml changed).
    """
    backend = services.backends.get(run.backend)
    if backend is None:
        raise Gone(f"backend {run.backend!r} of run {run.run_key!r} is not configured any more")
    return backend


QUEUE_ONLY = ("every_route", "blocks")  # a QUEUED start's detail that only `start_queued` reads


def answered(detail: dict[str, object]) -> dict[str, object]:
    """A start's detail as an answer shows it."""
    return {name: value for name, value in detail.items() if name not in QUEUE_ONLY}


def launch(
    services: Services,
    run: NewRun,
    pipeline: CompiledPipeline,
    note: Recorder,
    reading: Reading | None = None,
    also: Riders = NO_RIDERS,
) -> Started:
    """Claim `run.run_key` and, if this caller wins, start it; `note` writes the decision. The
    run keeps the trace it was decided in, for its submit and its result.

    `reading`: what the delivery read before deciding (`guards.gather`): a run key it found
    taken is answered from it (a duplicate costs no write but its decision), and its pause
    flag is not read again. `also` is written with the claim if it is won, else with the
    decision. A batch's objects are stored as the run's members, not in its document (a
    manifest may list 100,000); the submit still passes them."""
    run = replace(run, trace=run.trace or services.telemetry.current())
    seen = reading.runs.get(run.run_key) if reading is not None else None
    claim = claim_rule(seen, reading.at) if seen is not None and reading is not None else None
    if claim is None:  # absent when read, or a claim past its lease: claim it (or take it over)
        lease = services.settings.claim_lease_seconds
        claim = services.store.claim(_stored(services, run), services.clock(), lease, also)
    if claim.outcome is ClaimOutcome.DONE:
        state = claim.record.state if claim.record else ""
        note(Outcome.DUPLICATE, f"run key already {state}", also)
        return Outcome.DUPLICATE, {"state": str(state)}
    if claim.outcome is ClaimOutcome.BUSY:
        note(Outcome.BUSY, "another delivery holds a live claim", also)
        return Outcome.BUSY, {"retry_after": round(claim.retry_after, 1)}
    paused = reading.flags.get(limits.PAUSED) if reading is not None else None
    return start_claimed(services, run, pipeline, claim, note, paused)


def _stored(services: Services, run: NewRun) -> NewRun:
    """`run` as its document records it: a batch's objects written apart, as its members."""
    objects = run.params.get(BATCH_OBJECTS_PARAMETER)
    if not isinstance(objects, list):
        return run
    services.queue.add_members(run, [str(uri) for uri in objects], services.clock())
    return replace(run, params={k: v for k, v in run.params.items() if k != BATCH_OBJECTS_PARAMETER})


def start_claimed(
    services: Services,
    run: NewRun,
    pipeline: CompiledPipeline,
    claim: Claim,
    note: Recorder,
    paused: bool | None = None,
) -> Started:
    """Start a run this caller holds the claim of (`claim`, WON): queue it if a limit or the
    pause (`paused`, if read already) holds it back, else submit exactly one run."""
    superseding = supersede.applies(services, run)
    if superseding and (newer := supersede.newer(services, run)) is not None:
        return _end_unstarted(services, run, RunState.CANCELED, f"superseded by {newer}", note, newer)
    wait = limits.admit(services, run, paused)
    if wait is not None and wait.on_newer == "skip":  # the run ends here, and says why
        return _end_unstarted(services, run, RunState.SKIPPED, f"{wait.reason}: on_newer skip", note)
    if wait is not None and superseding:
        if older := supersede.cancel_older(
            services, run, lambda other: recorder(services, other, "supersede")
        ):
            wait = replace(wait, reason=f"{wait.reason}: on_newer supersede, waiting for {', '.join(older)}")
        else:  # the older runs were only queued, and have ended
            wait = limits.admit(services, run, paused)
    if wait is not None:
        services.queue.queue(run.run_key, claim.attempt, wait.reason, services.clock())
        note(Outcome.QUEUED, wait.reason)
        blocks = wait.scope if wait.scope.startswith("key:") else run.route
        return Outcome.QUEUED, {"reason": wait.reason, "every_route": wait.every_route, "blocks": blocks}
    services.crash(crashpoints.AFTER_CLAIM)
    return submit(services, run, pipeline, claim, note)


def submit(
    services: Services, run: NewRun, pipeline: CompiledPipeline, claim: Claim, note: Recorder
) -> Started:
    """Submit exactly one run for a claim this caller holds and may start: a taken-over claim
    looks for its predecessor's run by key first. The run id is recorded with its decision in
    one commit; a transient failure gives the claim back for the retry."""
    store, started, attempt = services.store, services.clock(), claim.attempt
    backend = services.backends[pipeline.backend]
    engine: Engine | None = None
    try:
        with services.telemetry.span("kfp_trigger.submit", run.trace, run_key=run.run_key, route=run.route):
            engine = engine_of(backend, answering=True)
            if engine is not None and (
                reason := engines.refusal(engine, pipeline.features, pipeline.schema_version)
            ):
                raise PermanentError(reason)  # fail fast, before the cluster fails the run
            # A taken-over claim may have submitted before its holder died: look before submitting.
            run_id = backend.find(run.run_key) if attempt > 1 else None
            run_id = run_id or backend.submit(Submission(run.run_key, run.route, pipeline, run.params))
    except TransientError as exc:
        store.release(run.run_key, attempt)
        note(Outcome.RETRY, str(exc))
        return Outcome.RETRY, {"reason": str(exc)}
    except PermanentError as exc:
        finish(services, run, RunState.FAILED, {"error": str(exc), **engine_detail(engine)})
        note(Outcome.FAILED, str(exc))
        publish_result(services, run.run_key)
        return Outcome.FAILED, {"reason": str(exc)}
    services.crash(crashpoints.AFTER_SUBMIT)
    on = f" on {engine.label}" if engine is not None else ""
    submitted = note.draft(Outcome.RUN, f"submitted as {run_id}{on}")  # written in the same commit
    also = Riders(decisions=(submitted,))
    if not store.mark_submitted(run.run_key, attempt, run_id, services.clock(), also, claim.version):
        # Our lease ran out mid-submit and another delivery took over: it adopts this run by key.
        log.warning("claim taken over while submitting", extra=fields(run_key=run.run_key, run_id=run_id))
    logged(submitted)
    arrived = run.created_at if isinstance(run, RunRecord) else started  # a queued run waited
    services.telemetry.run(run.route, run.backend, RunState.SUBMITTED, services.clock() - arrived)
    services.crash(crashpoints.AFTER_RECORD)
    return Outcome.RUN, {"run_id": run_id}


def engine_of(backend: Backend, *, answering: bool = False) -> Engine | None:
    """The backend's engine (asked once per instance; `pipelines.engines.Asked`), or None if it
    cannot say (a refused list permission, …): then the call that follows says what is wrong.

    Raises:
        TransientError: with `answering`, the engine does not answer (a timeout, a refused
            connection): a submit would meet the same after another timeout, so its delivery is
            retried at once instead.
    """
    try:
        return backend.engine()
    except TransientError:
        if answering:
            raise
        return None
    except Exception:  # asking is a courtesy: what else stops it never stops a submit
        return None


def engine_detail(engine: Engine | None) -> dict[str, object]:
    """What a run's details record of the engine that ran it (or refused it): `kfp 2.14.0`."""
    return {"engine": engine.label} if engine is not None else {}


def _end_unstarted(
    services: Services, run: NewRun, state: RunState, reason: str, note: Recorder, newer: str = ""
) -> Started:
    """End a claimed run that will not start (skipped, or superseded by `newer`), say why in its
    result, and publish it."""
    details: dict[str, object] = {"error": reason}
    if newer:
        details["superseded_by"] = newer
    finish(services, run, state, details)
    note(Outcome.SKIPPED, reason)
    publish_result(services, run.run_key)
    return Outcome.SKIPPED, {"reason": reason}


def pipeline_for(services: Services, run: NewRun) -> CompiledPipeline:
    """The catalog entry a recorded run was decided with, or its route's current one if that
    version is no longer loaded."""
    for pipeline in services.catalog.values():
        if (pipeline.name, pipeline.version, pipeline.backend) == (run.pipeline, run.version, run.backend):
            return pipeline
    return services.catalog[rule_of(services, run).pipeline]


def rule_of(services: Services, run: NewRun) -> Rule:
    """The route a recorded run belongs to.

    Raises:
        Gone: routes.yaml no longer has that route.
    """
    rule = services.router.by_name.get(run.route)
    if rule is None:
        raise Gone(f"route {run.route!r} of run {run.run_key!r} is not in routes.yaml any more")
    return rule


def finish(
    services: Services,
    run: NewRun,
    state: RunState,
    details: dict[str, object],
    decision: DecisionRecord | None = None,
    *,
    also: Riders = NO_RIDERS,
    publishing: bool = False,
) -> RunRecord | None:
    """Move a run to its terminal state and give back its place: the run as it ended, or None
    if it had ended already. In the same commit: `decision` (a `Recorder.draft`) only if the
    run moved, `also` whatever happened, and with `publishing` the right to publish its result
    (`publish_result(..., held=)`), so that no second commit takes it."""
    now = services.clock()
    lease = services.settings.claim_lease_seconds if publishing else 0.0
    ended = services.store.finish(
        run.run_key, state, details, now, decision=decision, also=also, publish_lease=lease
    )
    if ended is None:
        return None
    if decision is not None:
        logged(decision)
    limits.ended(services, run)
    submitted = run.submitted_at if isinstance(run, RunRecord) else None
    services.telemetry.run(run.route, run.backend, state, None if submitted is None else now - submitted)
    return ended


def complete(
    services: Services, run: RunRecord, told: Callable[[RunState], Riders] | None = None
) -> RunState | None:
    """Finish a SUBMITTED run if its engine reports it ended, and publish its result; the state it
    ended in, or None while the engine reports no end (or the run was never submitted).
    `told(state)`: riders written with the end (a completion notice's decision).

    The engine is the only authority (DESIGN.md): nothing but its status, for the run id the
    ledger recorded, moves a run to a terminal state. A run that has ended already has its
    result published (once: publishing holds a lease and is marked done).
    """
    if run.state.terminal:
        publish_result(services, run.run_key)
        return run.state
    if run.state is not RunState.SUBMITTED or run.run_id is None:
        return None
    backend = backend_of(services, run)
    status = backend.status(run.run_id)
    if not status.state.terminal:
        return None
    metrics = _metrics(services, run, status)
    details: dict[str, object] = {
        "started_at": status.started_at,
        "finished_at": status.finished_at,
        "metrics": metrics,
        "outputs": dict(status.outputs),
        "error": status.error,
        "log": status.log,
        **engine_detail(engine_of(backend)),
    }
    state, cancelled = supersede.as_cancelled(services, run.run_key, status.state, status.error)
    details |= cancelled
    reason = f"run ended {status.state}" + (
        f", as the cancel asked: {state}" if state is not status.state else ""
    )
    ended = recorder(services, run, "completion").draft(Outcome.COMPLETED, reason)
    also = told(state) if told is not None else NO_RIDERS
    held = finish(services, run, state, details, ended, also=also, publishing=True)
    services.crash(crashpoints.AFTER_TERMINAL)
    publish_result(services, run.run_key, held)
    return state


def _metrics(services: Services, run: RunRecord, status: RunStatus) -> dict[str, float]:
    """The run's metrics: the engine's, else those its metrics artifacts hold (a cluster keeps
    the values in its metadata store). A bucket the functions may not read is alerted, and the
    run ends without them rather than wait forever (`Refused`)."""
    if status.metrics or services.objects is None:
        return dict(status.metrics)
    try:
        metrics = metrics_at(services.objects, status.outputs)
        if not metrics and status.artifact_root:
            metrics = metrics_under(services.objects, status.artifact_root)
    except Refused as exc:
        alerts.refused(services, run.route, run.run_key, f"its metrics cannot be read: {exc.reason}")
        return {}
    return metrics


def adopt(services: Services, claim: RunRecord, run_id: str, why: str) -> None:
    """Record `run_id`, found on the engine by the run key, for a run the ledger has CLAIMED."""
    if services.store.mark_submitted(claim.run_key, claim.attempt, run_id, services.clock()):
        recorder(services, claim, "adoption")(Outcome.RUN, f"adopted {run_id} {why}")
