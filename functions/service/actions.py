"""What an operator does to one run on purpose: run it again (`rerun`), or stop it (`cancel`)."""

from __future__ import annotations

import itertools

from events.errors import PermanentError
from events.rules import pipeline_of
from functions.service import supersede
from functions.service.batches import batch_params
from functions.service.ports import Services
from functions.service.records import NewRun, Outcome
from functions.service.results import publish_result
from functions.service.runs import answered, backend_of, finish, launch, rule_of
from functions.service.trail import recorder
from pipelines.backend import RunState

RERUN_SUFFIX = "~rerun-"


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
    pipeline = services.catalog[pipeline_of(rule, run_key)]  # a canary key stays on the canary
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
            partition=original.partition,
            fresh_key=original.fresh_key,
        )
        outcome, detail = launch(services, fresh, pipeline, recorder(services, fresh, "rerun"))
        if outcome is not Outcome.DUPLICATE:  # a concurrent rerun took this number: try the next
            return new_key, outcome, answered(detail)
    raise AssertionError("unreachable")


def cancel(services: Services, run_key: str) -> RunState:
    """Cancel a run on purpose: a queued run ends CANCELED at once (it never started, its result
    is published); a submitted one is cancelled on its engine, which stays the authority on when
    it ends: the run is recorded CANCELED when the engine reports it stopped (FAILED included:
    `supersede.as_cancelled`), or SUCCEEDED if it finished first. Returns the run's state after
    the request.

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
    services.quotas.hold(supersede.CANCEL + run.run_key, 1, supersede.OPERATOR, services.clock())
    backend_of(services, run).cancel(run.run_id)
    note(Outcome.COMPLETED, f"cancel requested of {run.run_id}; the engine reports its end")
    return run.state
