"""What the ledger says, read for people: the service's status, one event's or run's whole story,
the last hour's activity and a search. `kfp-trigger status`/`explain` print these and the status
page (functions/statuspage) renders them: one reading of the ledger, through its ports.

Every read is bounded — counts are counted (aggregations), lists have limits — so a ledger of
100,000 runs and 1,000,000 decisions answers as fast as a small one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from events.rules import Rule
from functions.service.joins import describe
from functions.service.ledger import Ledger
from functions.service.limits import PAUSED
from functions.service.records import DecisionRecord, RunRecord, iso
from functions.service.route_lines import RouteLine, route_lines
from functions.service.supersede import SCOPE as SUPERSEDE_SCOPE
from functions.service.windows import JoinState
from pipelines.backend import RunState

CHART_LIMIT = 10_000  # decisions drawn in the activity chart (the newest, if there are more)
FOUND_LIMIT = 100

JoinNames = Mapping[str, tuple[str, ...]]  # a join route → its part names (from routes.yaml)


@dataclass(frozen=True)
class Status:
    """How the service stands."""

    paused: bool
    runs: dict[str, dict[str, int]]  # route → state → how many
    queued: int
    quarantined: int
    open_joins: int
    oldest_claim: RunRecord | None
    routes: list[RouteLine] = field(default_factory=list)  # every route, even one that never fired

    def as_json(self, now: float) -> dict[str, object]:
        oldest = self.oldest_claim
        return {
            "paused": self.paused,
            "runs": self.runs,
            "queued": self.queued,
            "quarantined": self.quarantined,
            "open_joins": self.open_joins,
            "oldest_open_claim": None
            if oldest is None
            else {
                "run_key": oldest.run_key,
                "route": oldest.route,
                "since": iso(oldest.created_at),
                "age_seconds": round(now - oldest.created_at, 1),
                "past_lease": oldest.lease_until <= now,
            },
            "routes": [line.as_json() for line in self.routes],
        }


def status(ledger: Ledger, rules: Sequence[Rule], paused: bool, now: float) -> Status:
    """Every route (`rules`: what it listens to, its next tick, its latest decision), the runs
    of each (and of the routes removed from routes.yaml, together: see `RunStore.summary`) by
    state, the queue, quarantined events, open joins, the oldest open claim, and whether
    submissions are paused (`paused`: by the settings; or by the ledger's flag)."""
    from functions.service.windows import JoinStatus

    summary = ledger.summary([rule.name for rule in rules])
    by_route: dict[str, dict[str, int]] = {}
    for (route, state), count in sorted(summary.items()):
        by_route.setdefault(route, {})[state.value] = count
    oldest = ledger.runs(state=RunState.CLAIMED, limit=1)  # oldest first
    return Status(
        paused=paused or ledger.flag(PAUSED),
        runs=by_route,
        queued=sum(count for (_, state), count in summary.items() if state is RunState.QUEUED),
        quarantined=ledger.count_quarantined(),
        open_joins=len(ledger.joins(status=JoinStatus.OPEN)),
        oldest_claim=oldest[0] if oldest else None,
        routes=route_lines(ledger, rules, now),
    )


@dataclass(frozen=True)
class Window:
    """A join window, told."""

    state: JoinState
    story: str
    missing: list[str] | None  # None: its route is gone from routes.yaml

    def as_json(self) -> dict[str, object]:
        window = self.state
        return {
            "route": window.route,
            "key": window.key,
            "status": window.status,
            "opened": iso(window.opened),
            "expires": iso(window.expires),
            "missing": self.missing,
            "story": self.story,
            "parts": {
                name: {"event_id": part.event_id, "event_key": part.event_key, "at": iso(part.at)}
                for name, part in sorted(window.parts.items())
            },
        }


@dataclass(frozen=True)
class Story:
    """Everything recorded about an event, run or join key: decisions oldest first, the runs
    they led to (with the chain of runs that superseded them), and join windows."""

    identifier: str
    decisions: list[DecisionRecord]
    runs: list[RunRecord]
    windows: list[Window] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "decisions": [asdict(step) for step in self.decisions],
            "runs": [asdict(run) for run in self.runs],
            "joins": [window.as_json() for window in self.windows],
        }


def story(ledger: Ledger, identifier: str, names: JoinNames) -> Story | None:
    """The story of an event id, event key, run key or join key; None if nothing is recorded.

    A run key leads to its events, and everything those events caused (other routes too); a
    join's windows bring their parts' events."""
    trail = ledger.trail(identifier)
    windows = _windows(ledger, identifier, {step.route for step in trail})
    for part in (part for window in windows for part in window.parts.values()):
        trail += [step for step in ledger.trail(part.event_id) if step not in trail]
    for event_id in sorted({step.event_id for step in trail if step.event_id} - {identifier}):
        trail += [step for step in ledger.trail(event_id) if step not in trail]
    trail.sort(key=lambda step: step.at)
    run_keys = {step.run_key for step in trail if step.run_key} | (
        {identifier} if ledger.get(identifier) else set()
    )
    related = _with_supersede_chain(ledger, run_keys)
    if not trail and not related:
        return None
    told = [Window(w, tell(w, names.get(w.route)), _missing(w, names.get(w.route))) for w in windows]
    return Story(identifier, trail, related, told)


def superseded_by(ledger: Ledger, run: RunRecord) -> str | None:
    """The run that replaced `run`: recorded at its end, or asking the engine to cancel it."""
    return str(run.details.get("superseded_by") or "") or _cancelled_by(ledger, run)


def tell(window: JoinState, names: tuple[str, ...] | None) -> str:
    """A join window's story in a sentence."""
    if names is None:  # the route is gone from routes.yaml: tell what arrived
        return f"join {window.key!r} {window.status}: parts {', '.join(sorted(window.parts))} arrived"
    return describe(names, window)


def _missing(window: JoinState, names: tuple[str, ...] | None) -> list[str] | None:
    return window.missing(names) if names is not None else None


def _windows(ledger: Ledger, identifier: str, routes: set[str]) -> list[JoinState]:
    """The join windows `identifier` names: as their key, or as the event id of one of their parts
    (looked up in the windows of the routes its decisions name)."""
    found = ledger.joins(key=identifier)
    for route in sorted(routes):
        found += [
            window
            for window in ledger.joins(route=route)
            if window not in found and identifier in {part.event_id for part in window.parts.values()}
        ]
    return found


def _with_supersede_chain(ledger: Ledger, run_keys: set[str]) -> list[RunRecord]:
    """The runs with these keys, and every run that superseded one of them, recursively."""
    found: dict[str, RunRecord] = {}
    pending = sorted(run_keys)
    while pending:
        run = ledger.get(pending.pop(0))
        if run is None or run.run_key in found:
            continue
        found[run.run_key] = run
        if by := superseded_by(ledger, run):
            pending.append(by)
    return sorted(found.values(), key=lambda run: (run.created_at, run.run_key))


def _cancelled_by(ledger: Ledger, run: RunRecord) -> str | None:
    """The newer run that asked the engine to cancel `run`, while the engine has not ended it."""
    holders = ledger.holders(SUPERSEDE_SCOPE + run.run_key)
    return holders[0] if holders else None


@dataclass(frozen=True)
class Activity:
    """Decisions per minute and outcome over the last `minutes` minutes (oldest minute first)."""

    start: float  # the first minute's start
    minutes: list[dict[str, int]]  # outcome → count, one mapping per minute
    cut: bool  # more decisions than CHART_LIMIT: only the newest are drawn


def activity(ledger: Ledger, now: float, minutes: int = 60) -> Activity:
    start = (now // 60 - minutes + 1) * 60
    decisions = ledger.recent(start, limit=CHART_LIMIT)
    counts: list[dict[str, int]] = [{} for _ in range(minutes)]
    for decision in decisions:
        slot = min(int((decision.at - start) // 60), minutes - 1)
        counts[slot][decision.outcome.value] = counts[slot].get(decision.outcome.value, 0) + 1
    return Activity(start, counts, len(decisions) >= CHART_LIMIT)


def about(ledger: Ledger, text: str, names: JoinNames, events: int = 10) -> Story | None:
    """The story of what `text` names exactly (`story`), or else the stories of the latest
    `events` events about objects or run keys starting with it (`bucket/name`, `gs://bucket/name`:
    every generation of an object), told as one; None if nothing is recorded."""
    found = story(ledger, text, names)
    if found is not None:
        return found
    keys = dict.fromkeys(
        d.event_key or d.run_key for d in ledger.find(text.removeprefix("gs://"), FOUND_LIMIT)
    )
    told = [each for key in list(keys)[:events] if (each := story(ledger, key, names)) is not None]
    if not told:
        return None
    decisions = sorted({id(d): d for each in told for d in each.decisions}.values(), key=lambda d: d.at)
    runs = list({run.run_key: run for each in told for run in each.runs}.values())
    return Story(text, decisions, runs, [window for each in told for window in each.windows])


def search(ledger: Ledger, text: str, names: JoinNames) -> Story | list[DecisionRecord]:
    """What `text` names: the story of an event id, event key, run key or join key, or else the
    decisions about objects (or run keys) starting with it — `bucket/name`, or `gs://bucket/name`."""
    text = text.strip()
    if not text:
        return []
    found = story(ledger, text, names)
    if found is not None:
        return found
    return ledger.find(text.removeprefix("gs://"), FOUND_LIMIT)
