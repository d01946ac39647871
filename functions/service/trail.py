"""The trail of decisions about runs: each written to the `DecisionLog`, and logged.

`record` writes one decision about an event; a `Recorder` writes those about one run, and drafts
the ones the ledger writes in the same commit as the state change they tell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from functions.logs import fields
from functions.service.ports import Services
from functions.service.records import NO_RIDERS, DecisionRecord, NewRun, Outcome, Riders

log = logging.getLogger("kfp_trigger.runs")


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
