"""`kfp-trigger routes plan`'s use case: what a change to routes.yaml would have done to the
events the ledger kept, writing nothing.

Each kept event (`DecisionLog.kept_since`: every event delivered to `handle_event`, within
retention, with its attributes and data) is decoded once and routed through both route files'
routers, as the intake routes it. Per route, what it would do with the event — start a run
(its run key, parameters and pipeline version) or take a join's part (which part, which key) —
is compared: a route that would act under NEW only gained the event, under OLD only lost it,
under both differently changed it. What happens after routing (duplicates, limits, the pause,
signatures, `max_age`, a batch's completeness) is not compared: the plan says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from events.decoders import decode
from events.errors import BadEvent
from events.model import Ignored
from events.router import Router, RunRequest
from functions.service.records import KeptEvent
from pipelines.backend import CompiledPipeline

EXAMPLES = 3  # events shown per route and kind of change
CHANGES = ("gained", "lost", "changed")
NOT_COMPARED = (
    "what happens after routing: duplicates, limits and the pause, signatures, max_age, a batch's "
    "completeness (the plan compares which routes act on each event, with which run key, "
    "parameters and pipeline version)"
)


@dataclass(frozen=True, slots=True)
class Routes:
    """One route file, loaded: its router and the pipelines it compiled (for their versions)."""

    router: Router
    catalog: Mapping[str, CompiledPipeline]


@dataclass
class RouteChanges:
    """What the change does to one route: events it gained, lost, changed; examples of each."""

    route: str
    old: int = 0  # events it acts on under OLD
    new: int = 0  # and under NEW
    gained: int = 0
    lost: int = 0
    changed: int = 0
    examples: dict[str, list[dict[str, object]]] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return bool(self.gained or self.lost or self.changed)

    def count(self, kind: str, example: dict[str, object]) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES:
            shown.append(example)


@dataclass
class Plan:
    since: float
    events: int = 0  # kept events read
    unreadable: int = 0  # kept without data (too large), or that no longer decode
    routes: dict[str, RouteChanges] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return any(route.differs for route in self.routes.values())

    def as_json(self) -> dict[str, object]:
        routes = [
            {name: getattr(route, name) for name in ("route", "old", "new", *CHANGES, "examples")}
            for route in sorted(self.routes.values(), key=lambda route: route.route)
        ]
        return {
            "since": self.since,
            "events": self.events,
            "unreadable": self.unreadable,
            "differs": self.differs,
            "routes": routes,
            "not_compared": NOT_COMPARED,
        }


def plan(
    kept: Iterable[KeptEvent],
    old: Routes,
    new: Routes,
    since: float,
    schedules_topic: str,
    step: Callable[[int], None] | None = None,
) -> Plan:
    """Route every kept event through OLD and NEW; per route, what changed. `step(read)`, if
    given, is called every 1,000 events (progress)."""
    found = Plan(since)
    for event in kept:
        found.events += 1
        if step is not None and not found.events % 1000:
            step(found.events)
        actions = _actions(event, (old, new), schedules_topic)
        if actions is None:
            found.unreadable += 1
            continue
        before, after = actions
        for route in sorted(before.keys() | after.keys()):
            changes = found.routes.setdefault(route, RouteChanges(route))
            _compare(changes, event, before.get(route), after.get(route))
    return found


Action = dict[str, object]  # what one route does with one event


def _actions(
    event: KeptEvent, sides: tuple[Routes, Routes], schedules_topic: str
) -> tuple[dict[str, Action], dict[str, Action]] | None:
    """Per side, what each route does with the event; None if it cannot be read again."""
    if not event.data:
        return None
    try:
        decoded = decode(dict(event.attributes), json.loads(event.data), schedules_topic)
    except (BadEvent, ValueError):
        return None
    if isinstance(decoded, Ignored):
        return {}, {}
    old, new = (
        {request.route: _action(request, side.catalog) for request in side.router.route(decoded).requests}
        for side in sides
    )
    return old, new


def _action(request: RunRequest, catalog: Mapping[str, CompiledPipeline]) -> Action:
    if request.part is not None:
        return {"part": request.part.name, "key": request.part.key}
    pipeline = catalog.get(request.pipeline)
    return {
        "run_key": request.run_key,
        "params": dict(request.params),
        "version": pipeline.version if pipeline is not None else request.pipeline,
    }


def _compare(changes: RouteChanges, event: KeptEvent, before: Action | None, after: Action | None) -> None:
    changes.old += before is not None
    changes.new += after is not None
    about: dict[str, object] = {"event_id": event.event_id, "type": event.attributes.get("type", "")}
    if before is None and after is not None:
        changes.count("gained", about | {"new": after})
    elif after is None and before is not None:
        changes.count("lost", about | {"old": before})
    elif before != after and before is not None and after is not None:
        changes.count("changed", about | {"fields": _differences(before, after), "old": before, "new": after})


def _differences(before: Action, after: Action) -> list[str]:
    """The fields that differ, a parameter by its name (`params.tenant`)."""
    found: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            keys = sorted(was.keys() | now.keys())
            found += [f"{name}.{key}" for key in keys if was.get(key) != now.get(key)]
        else:
            found.append(name)
    return found
