"""Passes over many runs: each run isolated, so one poison run cannot hold up every pass.

`start_queued` is the pass that starts the queued runs the limits allow; `isolated` keeps a
failure with its run (a `Gone` one is a strike, and after MAX_STRIKES the run ends FAILED).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from events.errors import Gone, TransientError
from functions.logs import fields, labelled
from functions.service import limits
from functions.service.batches import batch_params
from functions.service.ports import Services
from functions.service.records import ClaimOutcome, NewRun, Outcome, RunRecord
from functions.service.results import publish_result
from functions.service.runs import Started, finish, pipeline_for, start_claimed
from functions.service.trail import recorder
from pipelines.backend import RunState

log = logging.getLogger("kfp_trigger.runs")

MAX_STRIKES = 3  # passes that failed permanently on one run before it is recorded FAILED
STRIKES = "strikes/"  # the high-water mark counting a run's strikes: STRIKES + run key


@dataclass
class Pass:
    """What a pass over many runs did: how many runs it moved on, the ones it skipped (it tried,
    and could not), why, and the ones it left as they are (nothing to do yet), why."""

    done: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    left: list[dict[str, str]] = field(default_factory=list)

    def add(self, other: Pass) -> None:
        self.done += other.done
        self.skipped += other.skipped
        self.left += other.left

    def leave(self, run: NewRun, state: str, reason: str) -> None:
        self.left.append({"run_key": run.run_key, "state": state, "reason": reason})


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
            report.leave(queued, "QUEUED", "waiting: a limit of its route is reached")
            continue
        with isolated(services, queued, report, "starting it from the queue"):
            outcome, detail = _start_one(services, queued)
            if outcome is Outcome.RUN:
                report.done += 1
            elif outcome is Outcome.QUEUED:
                report.leave(queued, "QUEUED", f"waiting: {detail.get('reason') or 'a limit is reached'}")
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
