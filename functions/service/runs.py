"""The run lifecycle, shared by events, reruns, the queue and completions.

    launch ──claim──▶ start_claimed ──admit──▶ submit ──▶ SUBMITTED ──complete──▶ terminal ──▶ result
                            └── a limit or the pause ──▶ QUEUED ──start_queued──┘

Every change is a compare-and-set in the ledger, so concurrent deliveries, reconcilers and
notices never start a run twice, and a terminal state never moves back. The engine is the
only authority on whether a run has ended (`complete`).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from events.errors import Gone, PermanentError, TransientError
from events.routes import Rule
from functions.logs import fields, labelled
from functions.service import crashpoints, limits, supersede
from functions.service.batches import batch_params, metrics_at, metrics_under
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
from pipelines import engines
from pipelines.backend import Backend, CompiledPipeline, RunState, Submission
from pipelines.engines import Engine

log = logging.getLogger("kfp_trigger.runs")

Started = tuple[Outcome, dict[str, object]]  # what happened, and details for the answer
RERUN_SUFFIX = "~rerun-"
MAX_STRIKES = 3  # passes that failed permanently on one run before it is recorded FAILED
STRIKES = "strikes/"  # the high-water mark counting a run's strikes: STRIKES + run key


@dataclass
class Pass:
    """What a pass over many runs did: how many runs it moved on, and the ones it skipped, why."""

    done: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, other: Pass) -> None:
        self.done += other.done
        self.skipped += other.skipped


@contextmanager
def isolated(services: Services, run: NewRun, report: Pass, action: str) -> Iterator[None]:
    """Act on one run of a pass, logged under the run's own event id: whatever goes wrong stays
    with that run, is reported, and the pass goes on, so one poison run cannot hold up every pass
    (or every completion notice).

    When what the run needs is `Gone` (the engine does not know it; its route or backend was
    removed) that is a strike, and after MAX_STRIKES the run is recorded FAILED with the reason
    (`strike`). Anything else — an engine that is down, a refused credential, a bug — leaves the
    run as it is for the next pass: the engine stays the authority on how a run it knows ends.
    """
    with labelled(event_id=run.event_id, run_key=run.run_key):
        try:
            yield
        except Gone as exc:
            log.warning("run skipped this pass", extra=fields(action=action, reason=str(exc)))
            reason = f"{action}: {exc}"
            try:
                reason = strike(services, run, reason)
            except Exception:  # e.g. the ledger is down too: the next pass counts it
                log.exception("strike not recorded", extra=fields(action=action))
            report.skipped.append({"run_key": run.run_key, "reason": reason})
        except TransientError as exc:
            log.warning("run left for the next pass", extra=fields(action=action, reason=str(exc)))
            report.skipped.append({"run_key": run.run_key, "reason": f"{action}: {exc} (next pass)"})
        except Exception as exc:  # isolation is the point: the pass must go on
            log.exception("run left for the next pass", extra=fields(action=action))
            detail = str(exc) or type(exc).__name__
            report.skipped.append({"run_key": run.run_key, "reason": f"{action}: {detail} (next pass)"})


def strike(services: Services, run: NewRun, reason: str) -> str:
    """Count one permanent failure to act on `run`; at MAX_STRIKES, finish it FAILED with the
    reason and publish its result. What happened, for the pass's report."""
    key = f"{STRIKES}{run.run_key}"
    count = services.quotas.raise_mark(key, services.quotas.mark(key) + 1, services.clock())
    if count < MAX_STRIKES:
        return f"{reason} (strike {count} of {MAX_STRIKES}; tried again next pass)"
    error = f"gave up after {count} failed attempts: {reason}"
    if finish(services, run, RunState.FAILED, {"error": error}):
        recorder(services, run, "reconcile")(Outcome.FAILED, error)
        publish_result(services, run.run_key)
    return f"{reason} (strike {count}: recorded FAILED)"


def backend_of(services: Services, run: NewRun) -> Backend:
    """The backend a recorded run was submitted to.

    Raises:
        Gone: that backend is not configured any more (routes.yaml changed).
    """
    backend = services.backends.get(run.backend)
    if backend is None:
        raise Gone(f"backend {run.backend!r} of run {run.run_key!r} is not configured any more")
    return backend


def record(
    services: Services,
    event_id: str,
    event_key: str,
    event_type: str,
    outcome: Outcome,
    reason: str = "",
    *,
    route: str = "",
    run_key: str = "",
    also: Riders = NO_RIDERS,
) -> None:
    """Write one decision to the trail, with `also` (one log line, which names the run id when
    there is one)."""
    at = services.clock()
    decision = DecisionRecord(at, event_id, event_key, event_type, outcome, route, reason, run_key)
    written(services, decision, also)


def written(services: Services, decision: DecisionRecord, also: Riders = NO_RIDERS) -> None:
    """Write a decision to the trail (with `also`, in one commit), and log it."""
    services.decisions.write(also.deciding(decision))
    logged(decision)


def logged(decision: DecisionRecord) -> None:
    """The log line of a decision written to the trail."""
    about = {"outcome": decision.outcome, "route": decision.route, "run_key": decision.run_key}
    log.info("decision recorded", extra=fields(**about, reason=decision.reason))


@dataclass(frozen=True)
class Recorder:
    """Decisions about one run: `recorder(outcome, reason)` writes one; `draft` makes one for the
    ledger to write in the same commit as the state change it tells (`mark_submitted`,
    `finish`), and `logged` logs it once written. `prefix` starts every reason (a join's names
    the part that completed it)."""

    services: Services
    run: NewRun
    event_type: str
    event_key: str = ""
    prefix: str = ""

    def draft(self, outcome: Outcome, reason: str) -> DecisionRecord:
        run = self.run
        return DecisionRecord(
            self.services.clock(),
            run.event_id,
            self.event_key,
            self.event_type,
            outcome,
            run.route,
            self.prefix + reason,
            run.run_key,
        )

    def __call__(self, outcome: Outcome, reason: str, also: Riders = NO_RIDERS) -> None:
        written(self.services, self.draft(outcome, reason), also)


def recorder(services: Services, run: NewRun, event_type: str, event_key: str = "") -> Recorder:
    """A `Recorder` for decisions about `run`."""
    return Recorder(services, run, event_type, event_key)


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
    decision."""
    run = replace(run, trace=run.trace or services.telemetry.current())
    seen = reading.runs.get(run.run_key) if reading is not None else None
    claim = claim_rule(seen, reading.at) if seen is not None and reading is not None else None
    if claim is None:  # absent when read, or a claim past its lease: claim it (or take it over)
        claim = services.store.claim(run, services.clock(), services.settings.claim_lease_seconds, also)
    if claim.outcome is ClaimOutcome.DONE:
        state = claim.record.state if claim.record else ""
        note(Outcome.DUPLICATE, f"run key already {state}", also)
        return Outcome.DUPLICATE, {"state": str(state)}
    if claim.outcome is ClaimOutcome.BUSY:
        note(Outcome.BUSY, "another delivery holds a live claim", also)
        return Outcome.BUSY, {"retry_after": round(claim.retry_after, 1)}
    paused = reading.flags.get(limits.PAUSED) if reading is not None else None
    return start_claimed(services, run, pipeline, claim, note, paused)


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
    store, started, attempt = services.store, services.clock(), claim.attempt
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
        services.queue.queue(run.run_key, attempt, wait.reason, services.clock())
        note(Outcome.QUEUED, wait.reason)
        blocks = wait.scope if wait.scope.startswith("key:") else run.route
        return Outcome.QUEUED, {"reason": wait.reason, "every_route": wait.every_route, "blocks": blocks}
    services.crash(crashpoints.AFTER_CLAIM)
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


def start_queued(services: Services) -> Pass:
    """Start the queued runs that may start now, oldest first; how many were started, and
    which were skipped (`isolated`: a queued run whose route was removed cannot block the rest).

    Called when a run ends, by every reconcile pass and by `resume`. A route (or, for
    limits.concurrency, a route's key) whose limit is reached is not tried again in the same
    pass; nothing is when submissions are paused.
    """
    report = Pass()
    blocked: set[str] = set()  # routes, and keys of routes (limits.key_scope), full this pass
    for queued in services.queue.queued(services.clock()):
        if blocked & {queued.route, limits.key_scope(queued.route, queued.concurrency)}:
            continue
        with isolated(services, queued, report, "starting it from the queue"):
            outcome, detail = _start_one(services, queued)
            if outcome is Outcome.RUN:
                report.done += 1
            elif outcome is Outcome.QUEUED:
                if detail["every_route"]:
                    break
                blocked.add(str(detail["blocks"]))
    return report


def _start_one(services: Services, queued: RunRecord) -> Started:
    """Take one queued run and start it (DUPLICATE: somebody else took it first)."""
    pipeline = pipeline_for(services, queued)  # before taking it: a removed route fails here
    claim = services.queue.take(queued.run_key, services.clock(), services.settings.claim_lease_seconds)
    if claim.outcome is not ClaimOutcome.WON:
        return Outcome.DUPLICATE, {}
    run = replace(queued, params=batch_params(services, queued))
    note = recorder(services, queued, "queue")
    outcome, detail = start_claimed(services, run, pipeline, claim, note)
    if outcome is Outcome.RETRY:  # back to the queue, and reported as left for the next pass
        services.queue.queue(queued.run_key, claim.attempt, str(detail["reason"]), services.clock())
        raise TransientError(str(detail["reason"]))
    return outcome, detail


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


def rerun(services: Services, run_key: str) -> tuple[str, Outcome, dict[str, object]]:
    """Start a fresh run of a recorded run deliberately, under a new run key derived from the
    old one (`<run key>~rerun-<n>`, the first n not taken), so deduplication cannot block it.

    It runs what the route runs now (its current pipeline version and backend) with the
    recorded parameters. Returns the new run key, the outcome and its detail.

    Raises:
        PermanentError: no such run, or its route is no longer in routes.yaml.
    """
    original = services.store.get(run_key)
    if original is None:
        raise PermanentError(f"no run {run_key!r} in the ledger")
    rule = rule_of(services, original)
    pipeline = services.catalog[rule.pipeline]
    for number in itertools.count(1):
        new_key = f"{run_key}{RERUN_SUFFIX}{number}"
        if services.store.get(new_key) is not None:
            continue
        fresh = NewRun(
            run_key=new_key,
            route=rule.name,
            pipeline=pipeline.name,
            version=pipeline.version,
            backend=pipeline.backend,
            params=batch_params(services, original),
            event_id=original.event_id,
        )
        outcome, detail = launch(services, fresh, pipeline, recorder(services, fresh, "rerun"))
        if outcome is not Outcome.DUPLICATE:  # a concurrent rerun took this number: try the next
            return new_key, outcome, answered(detail)
    raise AssertionError("unreachable")


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
    metrics = dict(status.metrics)
    if not metrics and services.objects is not None:  # a cluster keeps values in its metadata store
        metrics = metrics_at(services.objects, status.outputs)
        if not metrics and status.artifact_root:
            metrics = metrics_under(services.objects, status.artifact_root)
    details: dict[str, object] = {
        "started_at": status.started_at,
        "finished_at": status.finished_at,
        "metrics": metrics,
        "outputs": dict(status.outputs),
        "error": status.error,
        **engine_detail(engine_of(backend)),
    }
    if status.state is RunState.CANCELED and (by := supersede.superseded_by(services, run.run_key)):
        details |= {"superseded_by": by, "error": status.error or f"superseded by {by}"}
    ended = recorder(services, run, "completion").draft(Outcome.COMPLETED, f"run ended {status.state}")
    also = told(status.state) if told is not None else NO_RIDERS
    held = finish(services, run, status.state, details, ended, also=also, publishing=True)
    services.crash(crashpoints.AFTER_TERMINAL)
    publish_result(services, run.run_key, held)
    return status.state


def adopt(services: Services, claim: RunRecord, run_id: str, why: str) -> None:
    """Record `run_id`, found on the engine by the run key, for a run the ledger has CLAIMED."""
    if services.store.mark_submitted(claim.run_key, claim.attempt, run_id, services.clock()):
        recorder(services, claim, "adoption")(Outcome.RUN, f"adopted {run_id} {why}")


def cancel(services: Services, run_key: str) -> RunState:
    """Cancel a run on purpose: a queued run ends CANCELED at once (it never started, its result
    is published); a submitted one is cancelled on its engine, which stays the authority: the
    run is recorded CANCELED (or however it ends) when the engine says so, by its notice or the
    reconciler. Returns the run's state after the request.

    Raises:
        PermanentError: no such run, it has ended already, or it is being submitted right now.
    """
    run = services.store.get(run_key)
    if run is None:
        raise PermanentError(f"no run {run_key!r} in the ledger")
    if run.state.terminal:
        raise PermanentError(f"run {run_key!r} has ended already: {run.state}")
    note = recorder(services, run, "cancel")
    if run.state is RunState.QUEUED and (adopted := supersede.on_engine(services, run)) is not None:
        run = adopted  # its engine has it after all (a submit whose answer was lost): cancel it there
    if run.state is RunState.QUEUED:
        if finish(services, run, RunState.CANCELED, {"error": "cancelled before it started"}):
            note(Outcome.COMPLETED, "cancelled while queued")
        publish_result(services, run.run_key)
        return RunState.CANCELED
    if run.run_id is None:
        raise PermanentError(f"run {run_key!r} is being submitted right now; try again in a moment")
    backend_of(services, run).cancel(run.run_id)
    note(Outcome.COMPLETED, f"cancel requested of {run.run_id}; the engine reports its end")
    return run.state
