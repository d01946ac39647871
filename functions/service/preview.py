"""`kfp-trigger simulate`'s use case: what the service would decide for an event now, writing
nothing.

The same decode, routing and `guards.decide` as `intake`, on facts read instead of written (the
generation mark is read, not raised; the batch is checked in the object store), then what
carrying the plan out would meet, read from the ledger: a run key already recorded (a duplicate,
or busy while a live claim holds it), the pause, and each limit's places. What it cannot check
from here is said in `unchecked`: without a ledger, everything that lives there; with one,
whether a coalesced object is already in some batch of its route; a place taken between this
preview and the real delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events.model import ObjectFinalized, TriggerEvent
from events.router import PartArrival, Router, Routing
from events.schema_limits import GlobalLimits
from functions.service import guards, limits
from functions.service.batches import batch_key
from functions.service.joins import describe as describe_window
from functions.service.joins import terms
from functions.service.ledger import Ledger
from functions.service.ports import ObjectStore
from functions.service.records import NewRun, SettleWindow, settle_rule
from functions.service.windows import JoinStatus, Part, arrive_rule
from pipelines.backend import CompiledPipeline, RunState


@dataclass(frozen=True, slots=True)
class Reader:
    """What the preview may read; None where it cannot (no ledger, no object store)."""

    now: float
    ledger: Ledger | None = None
    objects: ObjectStore | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    global_limits: GlobalLimits = field(default_factory=GlobalLimits)
    paused_setting: bool = False  # KFP_TRIGGER_PAUSED


@dataclass
class Preview:
    refused: str = ""  # the whole event would be quarantined, with this reason
    decisions: list[dict[str, object]] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


NO_LEDGER = "no ledger here: duplicates, the generation mark, the pause and the limits' places"
NO_OBJECTS = "no object store configured: whether the manifest's batch is complete"


def preview(
    event: TriggerEvent,
    routing: Routing,
    router: Router,
    catalog: Mapping[str, CompiledPipeline],
    reader: Reader,
) -> Preview:
    """What `intake.handle` would do with this routed event now."""
    found = Preview()
    if reader.ledger is None:
        found.unchecked.append(NO_LEDGER)
    facts = _facts(event, routing, reader, found)
    plan = guards.decide(event, routing, router, catalog, facts)
    if isinstance(plan, guards.Refuse):
        found.refused = plan.reason
        return found
    for step in plan:
        found.decisions.append(_verdict(step, event, reader, router, found))
    return found


def _facts(event: TriggerEvent, routing: Routing, reader: Reader, found: Preview) -> guards.Facts:
    mark = 0
    batch = None
    if routing.requests and isinstance(event, ObjectFinalized):
        if event.generation and reader.ledger is not None:
            mark = reader.ledger.mark(guards.generation_key(event))
        if any(request.manifest for request in routing.requests):
            if reader.objects is None:
                found.unchecked.append(NO_OBJECTS)
            batch = guards.batch_of(reader.objects, event)
    return guards.Facts(reader.now, reader.secrets, mark, batch)


def _verdict(
    step: guards.Step, event: TriggerEvent, reader: Reader, router: Router, found: Preview
) -> dict[str, object]:
    match step:
        case guards.Skip(route, reason, run_key):
            return {"route": route, "verdict": "skip", "reason": reason, "run_key": run_key}
        case guards.Retry(route, reason, run_key):
            return {"route": route, "verdict": "retry", "reason": reason, "run_key": run_key}
        case guards.Join(run, SettleWindow() as window):
            return _settling(run, window, reader, found)
        case guards.Join(run, float(window)):
            key, closes = batch_key(run.run_key, reader.now, window)
            entry: dict[str, object] = {"route": run.route, "run_key": key, "params": dict(run.params)}
            batch = reader.ledger.get(key) if reader.ledger is not None else None
            if batch is not None and batch.state is not RunState.QUEUED:
                return entry | {
                    "verdict": "join",
                    "reason": "its window's run has started: a batch of its own",
                }
            if reader.ledger is not None:
                found.unchecked.append(f"{run.route}: whether this object is in a batch of the route already")
            return entry | {
                "verdict": "join",
                "reason": f"joins the batch that starts at the window's end ({closes:.0f})",
            }
        case guards.Arrive(route, part):
            arrival = _arrival(
                route, part, Part(event.envelope.id, event.key, reader.now, {}), reader, router
            )
            return {"route": route, "part": part.name, "key": part.key} | arrival
        case guards.Launch(run, pipeline):
            entry = {
                "route": run.route,
                "run_key": run.run_key,
                "pipeline": pipeline.name,
                "params": dict(run.params),
            }
            return entry | _launch(run, reader, router)
    raise AssertionError(step)


def _settling(run: NewRun, window: SettleWindow, reader: Reader, found: Preview) -> dict[str, object]:
    """The settle batch the item would join (or open), and until when it would settle then."""
    ledger = reader.ledger
    head = ledger.settling(run.route, run.run_key) if ledger is not None else None
    current = ledger.get(head.run_key) if ledger is not None and head is not None else None
    joined = settle_rule(head, current.state if current else None, run.run_key, window, reader.now)
    if ledger is not None:
        found.unchecked.append(f"{run.route}: whether this item is in a batch of the route already")
    verb = "joins" if head is not None and joined.number == head.number else "opens"
    reason = f"{verb} batch {joined.run_key}: {joined.story()}, unless more items arrive"
    entry: dict[str, object] = {"route": run.route, "run_key": joined.run_key, "params": dict(run.params)}
    return entry | {"verdict": "join", "reason": reason}


def _arrival(route: str, part: PartArrival, event: Part, reader: Reader, router: Router) -> dict[str, object]:
    """Which part of which join window the event would fill, and what that would do."""
    rule = router.by_name[route]
    assert rule.join is not None
    if reader.ledger is None:
        return {"verdict": "join part", "reason": f"fills part {part.name!r} of join {part.key!r}"}
    windows = reader.ledger.joins(route=route, key=part.key)
    window = arrive_rule(windows, route, part.key, part.name, event, terms(rule), reader.now)
    counts = window.counts(part.name, event.event_id)
    if window.late_number and window.added:
        if rule.join.on_late == "rerun":
            reason = f"a late part {part.name!r}: its own run starts, …~late-{window.late_number}"
            return {"verdict": "run", "reason": reason}
        return {"verdict": "duplicate", "reason": f"a late part {part.name!r}: recorded (on_late: record)"}
    if not window.added or not counts:
        return {
            "verdict": "duplicate",
            "reason": f"part {part.name!r} of join {part.key!r} has arrived already",
        }
    if window.status is JoinStatus.COMPLETE:
        return {
            "verdict": "run",
            "reason": f"fills part {part.name!r}, the last one needed: the join's run starts",
        }
    return {
        "verdict": "join part",
        "reason": f"fills part {part.name!r}: {describe_window(rule.join.names, window)}",
    }


def _launch(run: NewRun, reader: Reader, router: Router) -> dict[str, object]:
    """What the claim and the limits would say, read from the ledger."""
    ledger = reader.ledger
    recorded = ledger.get(run.run_key) if ledger is not None else None
    if recorded is not None:
        if recorded.state is RunState.CLAIMED and recorded.lease_until > reader.now:
            return {"verdict": "busy", "reason": "another delivery holds a live claim"}
        if recorded.state is not RunState.CLAIMED:
            return {"verdict": "duplicate", "reason": f"run key already {recorded.state}"}
    if reader.paused_setting or (ledger is not None and ledger.flag(limits.PAUSED)):
        return {"verdict": "queued", "reason": limits.PAUSED_REASON}
    if ledger is None:
        return {"verdict": "run", "reason": ""}
    rule = router.by_name[run.route]
    for place in limits.places(run.route, rule.limits, reader.global_limits, reader.now, run.concurrency):
        if len(ledger.holders(place.scope)) >= place.limit:
            if place.on_newer == "skip":
                return {"verdict": "skip", "reason": f"{place.what} reached: on_newer skip"}
            if place.on_newer == "supersede":
                older = ", ".join(ledger.holders(place.scope))
                reason = f"{place.what} reached: on_newer supersede cancels {older}, then it starts"
                return {"verdict": "queued", "reason": reason}
            return {"verdict": "queued", "reason": f"{place.what} reached"}
    return {"verdict": "run", "reason": ""}
