"""`limits.concurrency.on_newer: supersede`: the newest run of a key wins.

When a run of a supersede route is about to start (`runs.start_claimed`):

- if a newer run of the same route and key exists (queued, or holding the key's place), this one
  ends CANCELED without starting, `superseded_by` that run (`newer`);
- if the key is full, every older run holding its place is cancelled on its engine, once: the
  place `supersede:<older run key>` (create-if-absent) names the run that cancelled it, so two
  newer runs racing request one cancel. This run then waits in the queue until the engine
  reports the older runs ended (`cancel_older`): the engine stays the authority on a run's end,
  so at most `max_active` runs of a key run at any moment, and an older run that ends on its own
  before the cancel lands ends as the engine says (SUCCEEDED, …) with this one starting after it;
- an older run still QUEUED ends CANCELED at once (only from QUEUED: one being taken right now
  goes the engine's way) — unless its engine has it after all (a submit whose answer was lost
  sends a run back to the queue): then it is adopted and cancelled there (`on_engine`).

"Newer" is the later claim on the ledger's clock (then the run key, so every instance agrees).
`superseded_by` names who cancelled a run, for its result. An operator's cancel (`actions.cancel`)
holds `cancel:<run key>` the same way. A run cancelled either way ends CANCELED whatever its
engine calls the end (`as_cancelled`): KFP stores a terminated run's workflow as Failed.
"""

from __future__ import annotations

from collections.abc import Callable

from events.errors import PermanentError, TransientError
from functions.service import limits
from functions.service.ports import Services
from functions.service.records import ClaimOutcome, NewRun, Outcome, RunRecord
from functions.service.results import publish_result
from pipelines.backend import RunState

Note = Callable[[Outcome, str], None]  # writes one decision about a run
SCOPE = "supersede:"  # + the superseded run's key: one place, held by the run that superseded it
CANCEL = "cancel:"  # + a run key: held by the operator who had its engine cancel it
OPERATOR = "operator"  # the holder of a CANCEL place


def applies(services: Services, run: NewRun) -> bool:
    """Whether `run` belongs to a key whose route supersedes."""
    per_key = limits.route_limits(services, run.route).concurrency
    return bool(run.concurrency) and per_key is not None and per_key.on_newer == "supersede"


def _order(run: RunRecord) -> tuple[float, str]:
    return run.created_at, run.run_key


def _siblings(services: Services, run: NewRun) -> list[RunRecord]:
    """The other unended runs of `run`'s route and key: those holding the key's place and those
    queued."""
    keys = set(services.quotas.holders(limits.key_scope(run.route, run.concurrency)))
    keys |= {
        queued.run_key
        for queued in services.store.runs(route=run.route, state=RunState.QUEUED)
        if queued.concurrency == run.concurrency
    }
    keys.discard(run.run_key)
    found = [services.store.get(key) for key in sorted(keys)]
    return [sibling for sibling in found if sibling is not None and not sibling.state.terminal]


def newer(services: Services, run: NewRun) -> str | None:
    """The run key of a newer unended run of the same route and key, if there is one."""
    mine = services.store.get(run.run_key)
    if mine is None:
        return None
    later = [sibling for sibling in _siblings(services, run) if _order(sibling) > _order(mine)]
    return max(later, key=_order).run_key if later else None


def cancel_older(services: Services, run: NewRun, note_for: Callable[[NewRun], Note]) -> list[str]:
    """Cancel the key's older runs for `run`: queued ones end at once, running ones are asked to
    stop on their engine (once). What `run` waits for, one line per older run still going.
    `note_for(older)` writes a decision about an older run."""
    mine = services.store.get(run.run_key)
    waiting: list[str] = []
    for older in _siblings(services, run):
        if mine is not None and _order(older) > _order(mine):
            continue  # a newer one: it supersedes this run at its own start
        once = SCOPE + older.run_key
        if older.state is RunState.QUEUED and (adopted := on_engine(services, older)) is not None:
            older = adopted  # it had started after all: cancel it on its engine, as any running run
        elif older.state is RunState.QUEUED:
            reason = f"superseded by {run.run_key} before it started"
            details = {"error": reason, "superseded_by": run.run_key}
            now = services.clock()
            if services.store.finish(
                older.run_key, RunState.CANCELED, details, now, only_from=RunState.QUEUED
            ):
                limits.ended(services, older)
                note_for(older)(Outcome.COMPLETED, reason)
                publish_result(services, older.run_key)
            continue  # else it is being taken right now: the next pass finds it running
        if run.run_key in services.quotas.holders(once):
            waiting.append(f"{older.run_key} (cancel requested)")
        elif older.run_id is None:
            waiting.append(f"{older.run_key} (being submitted: cancelled once it is)")
        elif not services.quotas.hold(once, 1, run.run_key, services.clock()):
            waiting.append(f"{older.run_key} (another newer run cancels it)")
        else:
            waiting.append(_cancel(services, run, older, older.run_id, note_for(older)))
    return waiting


def on_engine(services: Services, queued: RunRecord) -> RunRecord | None:
    """A QUEUED run that its engine has anyway, adopted: a start whose submit went through but
    whose answer was lost goes back to the queue, and taken again it would look before
    submitting. So before a queued run is ended without its engine, look: if the engine has it,
    record its run id (taking the run from the queue, once) and return it SUBMITTED; None if
    the engine does not have it (or somebody else took it first)."""
    if queued.attempt < 2:
        return None  # never taken from the queue: never submitted
    backend = services.backends.get(queued.backend)
    run_id = backend.find(queued.run_key) if backend is not None else None
    if run_id is None:
        return None
    now = services.clock()
    claim = services.queue.take(queued.run_key, now, services.settings.claim_lease_seconds)
    if claim.outcome is not ClaimOutcome.WON or not services.store.mark_submitted(
        queued.run_key, claim.attempt, run_id, now
    ):
        return None
    return services.store.get(queued.run_key)


def _cancel(services: Services, run: NewRun, older: RunRecord, run_id: str, note: Note) -> str:
    """Ask the engine to stop `older` for `run` (which holds its `supersede:` place)."""
    backend = services.backends.get(older.backend)
    try:
        if backend is None:
            raise PermanentError(f"backend {older.backend!r} is not configured any more")
        backend.cancel(run_id)
    except TransientError as exc:
        services.quotas.let_go(SCOPE + older.run_key, run.run_key)  # the next pass asks again
        return f"{older.run_key} (cancel failed: {exc}; asked again next pass)"
    except PermanentError as exc:  # it has ended already, or the engine does not know it
        return f"{older.run_key} (cancel refused: {exc})"
    note(Outcome.COMPLETED, f"superseded by {run.run_key}: cancel requested of {run_id}")
    return f"{older.run_key} (cancel requested)"


def superseded_by(services: Services, run_key: str) -> str | None:
    """The run that had `run_key` cancelled, if one did."""
    holders = services.quotas.holders(SCOPE + run_key)
    return holders[0] if holders else None


def as_cancelled(
    services: Services, run_key: str, state: RunState, error: str | None
) -> tuple[RunState, dict[str, object]]:
    """The state a run ended in, and the details to add, once its engine reports `state`: a run
    kfp-trigger had cancelled (superseded, or by an operator) that ends FAILED or CANCELED ends
    CANCELED, naming who superseded it. KFP ends a terminated run FAILED: `:terminate` sets a
    zero deadline and the workflow's Failed phase is stored; nothing sets CANCELED for a v2 run
    (kubeflow/pipelines backend/src/apiserver/resource/resource_manager.go TerminateRun and
    ReportWorkflowResource, backend/src/common/util/workflow.go). A run that succeeded before
    the cancel landed stays SUCCEEDED: the engine decides whether it ran to its end."""
    if state not in (RunState.FAILED, RunState.CANCELED):
        return state, {}
    if by := superseded_by(services, run_key):
        return RunState.CANCELED, {"superseded_by": by, "error": error or f"superseded by {by}"}
    if services.quotas.holders(CANCEL + run_key):
        return RunState.CANCELED, {"error": error or "cancelled on request"}
    return state, {}
