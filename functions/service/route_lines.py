"""Every route of routes.yaml in one line each, for `status` and the status page: what it
listens to, when its schedule next fires, and its latest decision, so that a route that never
fired shows as one that is waiting (and for what), not as nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from events.model import Source
from events.rules import Rule
from functions.service.ledger import DecisionLog
from functions.service.records import DecisionRecord, iso


@dataclass(frozen=True)
class RouteLine:
    name: str
    listens: str
    next_tick: str | None  # a schedule's next slot (RFC 3339), None for other sources
    last: DecisionRecord | None

    def as_json(self) -> dict[str, object]:
        last = self.last
        told: dict[str, object] | None = None
        if last is not None:
            told = {"at": iso(last.at), "outcome": last.outcome.value, "reason": last.reason}
            told["run_key"] = last.run_key
        return {
            "route": self.name,
            "listens": self.listens,
            "next_tick": self.next_tick,
            "last_decision": told,
        }


def route_lines(decisions: DecisionLog, rules: Sequence[Rule], now: float) -> list[RouteLine]:
    """One line per route, in routes.yaml's order (one bounded read of the ledger each)."""
    lines = []
    for rule in rules:
        latest = decisions.recent(0.0, route=rule.name, limit=1)
        lines.append(RouteLine(rule.name, listens(rule), next_tick(rule, now), latest[0] if latest else None))
    return lines


def listens(rule: Rule) -> str:
    """Where the route's events come from, as routes.yaml says it."""
    if rule.join is not None:
        return "join of " + ", ".join(f"{part.part}: {listens(part)}" for part in rule.join.parts)
    pattern = rule.pattern.text if rule.pattern is not None else ""
    match rule.source:
        case Source.STORAGE:
            return f"storage gs://{rule.index}/{pattern or '**'}"
        case Source.PUBSUB:
            return f"pubsub {rule.topic}"
        case Source.BIGQUERY:
            return f"bigquery {pattern}"
        case _:
            return f"schedule {rule.index} ({rule.cron}, {rule.timezone})"


def next_tick(rule: Rule, now: float) -> str | None:
    """The next slot of the route's schedule (of a join's schedule part), or None."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    parts = rule.join.parts if rule.join is not None else (rule,)
    slots = [
        croniter(part.cron, datetime.fromtimestamp(now, ZoneInfo(part.timezone))).get_next(datetime)
        for part in parts
        if part.cron
    ]
    return min(slots).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if slots else None
