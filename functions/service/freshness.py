"""Freshness of outcomes: per key, a run that succeeded by the deadline (`expect.succeeded_by`).

A route with `expect: {succeeded_by: "07:00", per: "{tenant}"}` renders `per` for every run (kept
with it as `fresh_key`). When a window ends, each key the route ran for in the last KEY_WINDOWS
windows needs a run that succeeded within the window; a key without one is late, and why is
read from the ledger, first cause first:

- a join window for the key is open: waiting on which parts;
- its latest run is queued (held by a limit or the pause: the hold's own reason), running
  (since when), failed or cancelled (its error), skipped, or succeeded after the deadline;
- otherwise no data arrived for it in the window (its latest run began before the window).

`watch.check` alerts each late key once per window, with the `explain` command that tells its
story. Without `per`, the route is one key ("").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from events.router import RunRequest
from events.rules import Rule
from functions.service.joins import describe, window_request
from functions.service.ledger import Ledger
from functions.service.records import RunRecord, iso
from functions.service.windows import JoinState, JoinStatus
from pipelines.backend import RunState

KEY_WINDOWS = 7  # a key the route ran for in this many windows back is expected in each
MOST_RUNS = 100_000  # a route's runs read at most per judged window


@dataclass(frozen=True, slots=True)
class Late:
    """A key without a run that succeeded in the window: why, and what `explain` tells its story."""

    key: str
    cause: str
    explain: str  # a run key, a join key, or the late window's own decision


def late_keys(ledger: Ledger, rule: Rule, start: float, end: float) -> list[Late]:
    """The keys of `rule` without a run that succeeded in (start, end], each with its cause."""
    assert rule.expect is not None
    since = end - KEY_WINDOWS * rule.expect.every
    runs = [
        run
        for run in ledger.runs(route=rule.name, limit=MOST_RUNS, newest_first=True)
        if since < run.created_at <= end
    ]
    waiting = _open_windows(ledger, rule, end)
    found = []
    for key in sorted({run.fresh_key for run in runs} | waiting.keys()):
        mine = [run for run in runs if run.fresh_key == key]  # newest first
        if any(_succeeded_in(run, start, end) for run in mine):
            continue
        found.append(_cause(rule, key, mine, waiting.get(key), start, end))
    return found


def _succeeded_in(run: RunRecord, start: float, end: float) -> bool:
    return run.state is RunState.SUCCEEDED and run.finished_at is not None and start < run.finished_at <= end


def _open_windows(ledger: Ledger, rule: Rule, end: float) -> dict[str, JoinState]:
    """The route's open join windows opened by `end`, by the key their run would be judged by."""
    if rule.join is None:
        return {}
    found = {}
    for window in ledger.joins(route=rule.name, status=JoinStatus.OPEN):
        built = window_request(rule, window)  # a part it reads may not be in yet: the join key then
        key = built.fresh_key if isinstance(built, RunRequest) else window.key
        if window.opened <= end:
            found[key] = window
    return found


def _cause(
    rule: Rule, key: str, runs: Iterable[RunRecord], window: JoinState | None, start: float, end: float
) -> Late:
    about = f"key {key!r}" if key else f"route {rule.name}"
    if window is not None and rule.join is not None:
        story = describe(rule.join.names, window, rule.join.needed)
        return Late(key, f"{about}: a {story}", window.key)
    latest = next(iter(runs), None)
    if latest is None or (latest.created_at <= start and latest.state.terminal):
        last = f" (its last run: {latest.run_key}, {latest.state})" if latest is not None else ""
        cause = f"{about}: no data arrived between {iso(start)} and {iso(end)}{last}"
        return Late(key, cause, f"freshness/{rule.name}/{key}@{iso(end)}")
    return Late(key, f"{about}: {_run_story(latest)}", latest.run_key)


def _run_story(run: RunRecord) -> str:
    """What became of the run, in words."""
    detail = str(run.details.get("queued") or run.details.get("error") or run.details.get("reason") or "")
    match run.state:
        case RunState.QUEUED:
            return f"its run {run.run_key} is held: {detail or 'queued'}"
        case RunState.CLAIMED | RunState.SUBMITTED:
            return f"its run {run.run_key} is still running (since {iso(run.created_at)})"
        case RunState.FAILED | RunState.CANCELED:
            return f"its run {run.run_key} {str(run.state).lower()}: {detail or 'no reason recorded'}"
        case RunState.SUCCEEDED:
            return f"its run {run.run_key} succeeded at {iso(run.finished_at)}, after the deadline"
        case _:
            return f"its run {run.run_key} was {str(run.state).lower()}: {detail}"
