"""The router: pure matching of a typed event against compiled rules.

Rules are indexed by (source, bucket | topic | table | job), so an event is compared only with
the routes that listen where it came from; the cost does not grow with the number of routes
elsewhere. BigQuery routes whose table is a pattern sit in a per-source scan list.

`route(event)` returns a `Routing`: one `RunRequest` per matching route and one `Skip` (with its
reason) per route that listens there but did not match. `routed` is False when no route listens
there at all, which the service treats as a misrouted event (quarantine), not a skip.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from events.errors import TransientError
from events.filters import ABSENT, shown
from events.model import (
    Message,
    ObjectFinalized,
    ScheduleTick,
    TableWritten,
    TriggerEvent,
    common_fields,
)
from events.params import Missing, build, coerce, lookup, render_key
from events.rules import Rule, listeners

log = logging.getLogger("kfp_trigger.router")


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Start `pipeline` with `params`; `run_key` makes the start idempotent."""

    route: str
    pipeline: str
    params: Mapping[str, object]
    run_key: str
    manifest: bool = False  # the triggering object is a batch manifest to check before running
    concurrency: str = ""  # the run's key under limits.concurrency (e.g. the tenant), or ""
    part: PartArrival | None = None  # a join's part arrived: the run is built once all have
    partition: str = ""  # what the route's `partition` names for this run
    fresh_key: str = ""  # what the route's `expect.per` names for this run


@dataclass(frozen=True, slots=True)
class PartArrival:
    """A join's part matched an event: which part, the correlation key it rendered, and the
    fields of the event the run's templates read (`parts.<name>.<field>`)."""

    name: str
    key: str
    values: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Skip:
    route: str
    reason: str


Decision = RunRequest | Skip


@dataclass(frozen=True, slots=True)
class Routing:
    decisions: tuple[Decision, ...]
    routed: bool

    @property
    def requests(self) -> tuple[RunRequest, ...]:
        return tuple(d for d in self.decisions if isinstance(d, RunRequest))


class Router:
    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.by_name = {rule.name: rule for rule in rules}
        self._index: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        self._scan: dict[str, list[Rule]] = defaultdict(list)
        for rule in listeners(rules):  # a join's parts listen, each where its source is
            if rule.index:
                self._index[(rule.source, rule.index)].append(rule)
            else:
                self._scan[rule.source].append(rule)

    def listener(self, request: RunRequest) -> Rule:
        """The rule that matched a request: its route's, or its join part's."""
        rule = self.by_name[request.route]
        if request.part is None or rule.join is None:
            return rule
        return next(part for part in rule.join.parts if part.part == request.part.name)

    def candidates(self, event: TriggerEvent) -> list[Rule]:
        return self._index.get((event.kind, event.index), []) + self._scan.get(event.kind, [])

    def route(self, event: TriggerEvent) -> Routing:
        rules = self.candidates(event)
        return Routing(tuple(_decided(rule, event) for rule in rules), routed=bool(rules))


def _decided(rule: Rule, event: TriggerEvent) -> Decision:
    """The rule's decision. Planning is total: whatever an event's values make go wrong (a number
    too large for its type, a time outside the calendar) is that route's recorded skip, logged
    with its traceback; only a transient failure asks for the event again."""
    try:
        return _decide(rule, event)
    except TransientError:
        raise
    except Exception as exc:
        log.exception("planning a route failed", extra={"fields": {"route": rule.name}})
        return Skip(rule.name, f"the run could not be planned from this event ({type(exc).__name__})")


def _decide(rule: Rule, event: TriggerEvent) -> Decision:
    """Match one rule; on a match, build its run request."""
    matched = _match(rule, event)
    if isinstance(matched, str):
        return Skip(rule.name, matched)
    if not rule.enabled:
        return Skip(rule.name, "route is disabled (run.enabled: false)")
    fields: dict[str, object] = common_fields(event)
    fields.update(matched)
    fields["route"] = rule.name
    message = _message_view(event)
    if rule.part:
        return _arrive(rule, fields, message)
    return request(rule, fields, message)


# What a route may also name for each run (what a failure to render it is about → the Rule's template)
OPTIONAL_KEYS = {
    "the concurrency key": "concurrency_key",
    "the partition": "partition",
    "the freshness key (expect.per)": "fresh_key",
}


def request(rule: Rule, fields: Mapping[str, object], message: Mapping[str, Any] | None) -> Decision:
    """The run request of a route whose condition holds, built from `fields` (and a message's
    attributes and data): its typed params, its run key and its concurrency key; or why not."""
    params: dict[str, object] = {}
    building = "the run key"  # what a ValueError is about
    try:
        for name, spec in rule.params.items():
            building = f"parameter {name!r}"
            value = build(spec, fields, message, raw=rule.raw_values)
            declared = rule.param_types.get(name)
            params[name] = coerce(value, declared) if declared else value
        building = "the run key"
        run_key = render_key(rule.run_key, fields, message, raw=rule.raw_values)
        keys = {}  # the route's optional keys: "" where it names none
        for what, template in OPTIONAL_KEYS.items():
            building, given = what, getattr(rule, template)
            keys[template] = "" if given is None else render_key(given, fields, message, raw=rule.raw_values)
    except Missing as exc:
        return Skip(rule.name, f"the event has no field {exc.args[0]!r} needed for the run")
    except ValueError as exc:
        return Skip(rule.name, f"{building}: {exc}")
    return RunRequest(
        rule.name,
        rule.pipeline,
        params,
        run_key,
        rule.manifest,
        keys["concurrency_key"],
        partition=keys["partition"],
        fresh_key=keys["fresh_key"],
    )


def _arrive(rule: Rule, fields: Mapping[str, object], message: Mapping[str, Any] | None) -> Decision:
    """A join's part matched: its correlation key and the fields the run will read."""
    try:
        key = render_key(rule.run_key, fields, message, raw=rule.raw_values)
        values = {path: lookup(path, fields, message) for path in rule.needs}
    except Missing as exc:
        return Skip(rule.name, f"part {rule.part!r}: the event has no field {exc.args[0]!r}")
    except ValueError as exc:
        return Skip(rule.name, f"part {rule.part!r}: the join key: {exc}")
    arrival = PartArrival(rule.part, key, values)
    return RunRequest(rule.name, rule.pipeline, {}, "", rule.manifest, part=arrival)


def _match(rule: Rule, event: TriggerEvent) -> dict[str, object] | str:
    """The fields a match captures, or the reason the event does not match."""
    match event:
        case ObjectFinalized():
            return _match_object(rule, event)
        case Message():
            return _match_message(rule, event)
        case TableWritten():
            return _match_table(rule, event)
        case ScheduleTick():
            return {"schedule.slot": schedule_slot(rule.cron, rule.timezone, event.publish_time)}


def _message_view(event: TriggerEvent) -> Mapping[str, Any] | None:
    if isinstance(event, Message):
        return {"attributes": event.attributes, "data": event.payload}
    return None


def _match_pattern(rule: Rule, value: str, what: str) -> dict[str, object] | str:
    captures = rule.pattern.match(value) if rule.pattern else {}
    if captures is None:
        pattern = rule.pattern.text if rule.pattern else ""
        return f"{what} {value[:200]!r} does not match {pattern!r}"
    return dict(captures)


def _match_table(rule: Rule, event: TableWritten) -> dict[str, object] | str:
    matched = _match_pattern(rule, event.table_id, "table")
    if not isinstance(matched, str) and event.rows is not None and event.rows < rule.min_rows:
        return f"the job wrote {event.rows} rows, fewer than min_rows {rule.min_rows}"
    return matched


def _match_object(rule: Rule, event: ObjectFinalized) -> dict[str, object] | str:
    matched = _match_pattern(rule, event.name, "object name")
    if isinstance(matched, str):
        return matched
    if rule.name_filter is not None and not rule.name_filter.holds(event.name):
        return f"object name {event.name[:200]!r} does not meet {rule.name_filter.text}"
    if rule.content_types and (event.content_type or "") not in rule.content_types:
        return f"content type {(event.content_type or '(none)')[:80]!r} is not accepted"
    if event.size < rule.min_size:
        return f"object is {event.size} bytes, smaller than min_size {rule.min_size}"
    return matched


def _match_message(rule: Rule, event: Message) -> dict[str, object] | str:
    if "/" in rule.topic and rule.topic != event.topic:
        return f"message is from {event.topic!r}, not {rule.topic!r}"
    for key, wanted in rule.attributes.items():
        value = event.attributes.get(key, ABSENT)
        if not wanted.holds(value):
            return f"attribute {key!r} {_seen(value)} does not meet {wanted.text}"
    if rule.data and event.payload is None:
        return "message data is not a JSON object, so data conditions cannot hold"
    view = _message_view(event)
    for path, wanted in rule.data.items():
        try:
            value = lookup(f"data.{path}", {}, view)
        except Missing:
            value = ABSENT
        if not wanted.holds(value):
            return f"data field {path!r} {_seen(value)} does not meet {wanted.text}"
    return {}


def _seen(value: object) -> str:
    """A value in a reason: bounded, since the event's sender chose it."""
    return "(absent)" if value is ABSENT else f"({shown(value)[:80]})"


def schedule_slot(cron: str, timezone: str, published: datetime) -> str:
    """The cron slot a Scheduler message belongs to: its publish time rounded down to `cron`.

    Scheduler publishes a little after the slot, and a retried or duplicated execution of the
    same slot publishes later still, but before the next slot: all of them round to one slot.
    """
    from zoneinfo import ZoneInfo

    from croniter import croniter

    local = published.astimezone(ZoneInfo(timezone))
    slot: datetime = croniter(cron, local + timedelta(seconds=1)).get_prev(datetime)
    return slot.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
