"""`kfp-trigger partitions`' use case: each partition of a route and where it stands.

A route names the partition each run covers (`partition: "{tenant}/{date}"`, kept with the run).
A partition's state is its latest run's — `queued` (a settle batch: `waiting`, until when),
`running` (claimed or submitted), `succeeded`, `failed` (or cancelled), `skipped` — or `waiting`
while a join window for it is open (on which parts), or `stale` once an event with new content
reached its run key after the run was created (a newer object generation, a late join part
recorded only): the run did not see it. When every partition ends in a day (`…/2026-12-01` or
`…/20261201`), they form a matrix, one row per leading part and one column per day of the
span, and a day with nothing is `missing`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from events.router import RunRequest
from events.rules import Rule
from functions.service import actions
from functions.service.backfill import Report
from functions.service.joins import describe, window_request
from functions.service.ledger import Ledger
from functions.service.records import DecisionRecord, Outcome, RunRecord
from functions.service.windows import JoinStatus
from pipelines.backend import RunState

if TYPE_CHECKING:
    from functions.service.ports import Services

MARKS = {  # each state, and the character a matrix shows it by (the CLI's, the status page's legend)
    "succeeded": "S",
    "failed": "F",
    "running": "R",
    "queued": "Q",
    "waiting": "W",
    "stale": "!",
    "skipped": "-",
    "missing": ".",
}
REPROCESSED = ("failed", "stale")  # what `backfill --reprocess` runs again
RUN_STATES = {
    RunState.QUEUED: "queued",
    RunState.CLAIMED: "running",
    RunState.SUBMITTED: "running",
    RunState.SUCCEEDED: "succeeded",
    RunState.FAILED: "failed",
    RunState.CANCELED: "failed",
    RunState.SKIPPED: "skipped",
}
DAY = re.compile(r"^(?P<lead>.*?)/?(?P<day>\d{4}-\d{2}-\d{2}|\d{8})$")
MOST_RUNS = 1_000_000  # a route's runs read at most (the ledger's retention bounds them first)


@dataclass(frozen=True, slots=True)
class Cell:
    """One partition: its state, why, and the run that decides it."""

    partition: str
    state: str
    detail: str = ""
    run_key: str = ""
    at: float = 0.0  # when its run (or window) began


@dataclass
class Partitions:
    route: str
    since: float
    cells: dict[str, Cell] = field(default_factory=dict)  # by partition, the known ones
    rows: list[str] = field(default_factory=list)  # a matrix's leading parts, sorted
    days: list[str] = field(default_factory=list)  # a matrix's day columns, oldest first

    @property
    def matrix(self) -> bool:
        return bool(self.days)

    def cell(self, row: str, day: str) -> Cell:
        """A matrix cell: the partition of `row` on `day`, or missing."""
        name = f"{row}/{day}" if row else day
        return self.cells.get(name) or Cell(name, "missing")

    def every_cell(self) -> list[Cell]:
        """The known partitions, and in a matrix every missing one too."""
        if not self.matrix:
            return [self.cells[name] for name in sorted(self.cells)]
        shown = [self.cell(row, day) for row in self.rows for day in self.days]
        outside = [cell for name, cell in sorted(self.cells.items()) if not _in_span(name, self.days)]
        return shown + outside

    def counts(self) -> Counter[str]:
        return Counter(cell.state for cell in self.every_cell())

    def as_json(self) -> dict[str, object]:
        cells = self.every_cell()
        return {
            "route": self.route,
            "counts": {state: count for state, count in self.counts().items() if count},
            "days": self.days,
            "rows": self.rows,
            "partitions": [
                {"partition": c.partition, "state": c.state, "detail": c.detail, "run_key": c.run_key}
                for c in cells
            ],
        }


def partitions(ledger: Ledger, rule: Rule, now: float, days: int = 30) -> Partitions:
    """Where each partition of `rule` stands now; a matrix spans the `days` days to today (UTC)."""
    found = Partitions(rule.name, now - days * 86400.0)
    latest = _latest_runs(ledger.runs(route=rule.name, limit=MOST_RUNS))
    decisions = ledger.recent(found.since, route=rule.name, limit=MOST_RUNS)
    stale = _stale(latest.values(), decisions)
    for name, run in latest.items():
        found.cells[name] = _run_cell(name, run, stale.get(run.run_key))
    if rule.join is not None:
        for window in ledger.joins(route=rule.name, status=JoinStatus.OPEN):
            built = window_request(rule, window)  # a part it reads may not be in yet: the key then
            name = built.partition if isinstance(built, RunRequest) and built.partition else window.key
            if name not in found.cells:
                story = describe(rule.join.names, window, rule.join.needed)
                found.cells[name] = Cell(name, "waiting", story, at=window.opened)
    _as_matrix(found, now, days)
    return found


def _latest_runs(runs: Iterable[RunRecord]) -> dict[str, RunRecord]:
    """Each partition's latest run (by creation; a rerun is newer than its original)."""
    latest: dict[str, RunRecord] = {}
    for run in runs:
        if run.partition and (
            run.partition not in latest or run.created_at >= latest[run.partition].created_at
        ):
            latest[run.partition] = run
    return latest


def _stale(runs: Iterable[RunRecord], decisions: list[DecisionRecord]) -> dict[str, DecisionRecord]:
    """The runs (by key) that an event with new content reached after they were created: that
    event's decision, a duplicate of the run about an event key the run did not take."""
    by_key = {run.run_key: run for run in runs}
    taken: dict[str, set[str]] = {}
    for decision in decisions:
        if decision.run_key in by_key and decision.outcome in (Outcome.RUN, Outcome.QUEUED):
            taken.setdefault(decision.run_key, set()).add(decision.event_key)
    stale: dict[str, DecisionRecord] = {}
    for decision in decisions:  # newest first: the first found is the latest
        run = by_key.get(decision.run_key)
        if (
            run is not None
            and decision.outcome is Outcome.DUPLICATE
            and decision.at >= run.created_at
            and decision.event_key not in taken.get(run.run_key, set())
            and run.run_key not in stale
        ):
            stale[run.run_key] = decision
    return stale


def _run_cell(name: str, run: RunRecord, newer: DecisionRecord | None) -> Cell:
    state = RUN_STATES.get(run.state, str(run.state).lower())
    detail = str(run.details.get("queued") or run.details.get("error") or "")
    if state == "queued" and detail.startswith("settling until"):
        state = "waiting"
    if newer is not None and state != "queued":
        state, detail = "stale", f"{newer.event_key} arrived after its run ({state})"
    return Cell(name, state, detail, run.run_key, run.created_at)


def _as_matrix(found: Partitions, now: float, days: int) -> None:
    """Lay the partitions out by day when every one ends in a day."""
    matched = {name: DAY.match(name) for name in found.cells}
    if not matched or not all(matched.values()):
        return
    dashed = any("-" in m["day"] for m in matched.values() if m)
    today = datetime.fromtimestamp(now, UTC).date()
    span = [today - timedelta(days=back) for back in range(days - 1, -1, -1)]
    found.days = [day.isoformat() if dashed else day.strftime("%Y%m%d") for day in span]
    found.rows = sorted({m["lead"] for m in matched.values() if m})


def _in_span(name: str, days: list[str]) -> bool:
    matched = DAY.match(name)
    return matched is not None and matched["day"] in days


def reprocess(
    services: Services,
    rule: Rule,
    state: str,
    now: float,
    days: int,
    *,
    dry_run: bool = False,
    step: Callable[[dict[str, object]], None] = lambda decision: None,
    stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Run again (`actions.rerun`: RUN_KEY~rerun-N) the latest run of every partition of `rule`
    in `state` (failed, stale) within the span; with `dry_run`, only say which. `step` gets each
    decision as it is made; `stop` is asked between two partitions."""
    ledger = cast("Ledger", services.store)  # bootstrap wires one ledger to every ledger port
    report = Report(rule.name, dry_run)
    chosen = [cell for cell in partitions(ledger, rule, now, days).every_cell() if cell.state == state]
    for cell in chosen:
        if stop():
            report.interrupted = True
            break
        report.candidates += 1
        entry: dict[str, object] = {"what": cell.partition, "event_id": "", "run_key": cell.run_key}
        if dry_run:
            entry |= {"outcome": "rerun", "reason": f"{state}: {cell.detail}".rstrip(": ")}
        else:
            new_key, outcome, _ = actions.rerun(services, cell.run_key)
            entry |= {
                "outcome": str(outcome),
                "run_key": new_key,
                "reason": f"reran {cell.run_key} as {new_key}",
            }
        report.outcomes[str(entry["outcome"])] += 1
        report.decisions.append(entry)
        step(entry)
    return report
