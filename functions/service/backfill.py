"""`kfp-trigger backfill`'s use case, and reconcile's catch-up of missed schedule slots: send
what one route missed through the normal intake.

Events get lost outside the service (a trigger deleted for an hour, a bucket older than its
trigger, a scheduler paused over a weekend). A backfill rebuilds them from what can be listed:

- a storage route: every object in its bucket under its pattern's literal prefix that the route
  matches, last written in [since, until), as the finalize event Eventarc would have delivered,
  with the object's real generation, so its run key is the one a live delivery would have;
- a schedule route: every cron slot in [since, until), as the Scheduler message;
- a join route: those of its storage and schedule parts (its other parts' events: `replay`).

Each goes through `intake.handle` with a router of that route alone (other routes on the bucket
are not touched): the same decoding, deduplication, limits and decisions, so a second pass starts
nothing. A dry run asks `preview` instead and writes nothing. Event ids are derived from what they
stand for (`backfill-…`), so every pass records its decisions on the same ids.

`catch_up`, on every reconcile pass: a schedule route with `schedule.catch_up` has the slots of
that horizon it has not had yet sent the same way, each once (a high-water mark per route keeps
where it got to; a slot answered "retry" stops it there, for the next pass).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from events.decoders import decode
from events.envelope import parse_http
from events.errors import PermanentError
from events.eventarc import Delivery, object_finalized, scheduler_tick
from events.model import Source, TriggerEvent
from events.router import Router
from events.rules import Rule
from functions.service import intake, preview
from functions.service.passes import Pass
from functions.service.ports import Services
from functions.service.records import Outcome

EVENT_ID_PREFIX = "backfill-"
LISTABLE = (Source.STORAGE, Source.SCHEDULE)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One event the route may have missed."""

    what: str  # gs://bucket/name#generation, or job@slot
    delivery: Delivery
    slot: datetime | None = None  # a schedule's slot


@dataclass
class Report:
    route: str
    dry_run: bool
    candidates: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # outcome (or verdict) → how many
    decisions: list[dict[str, object]] = field(default_factory=list)
    interrupted: bool = False  # stopped when asked, between two candidates: the rest not sent

    def as_json(self) -> dict[str, object]:
        return {
            "route": self.route,
            "dry_run": self.dry_run,
            "interrupted": self.interrupted,
            "candidates": self.candidates,
            "outcomes": dict(sorted(self.outcomes.items())),
            "decisions": self.decisions,
        }


def backfillable(services: Services, route: str) -> Rule:
    """The route to backfill.

    Raises:
        PermanentError: no such route, or it listens to nothing that can be listed.
    """
    rule = services.router.by_name.get(route)
    if rule is None:
        raise PermanentError(f"no route {route!r} in routes.yaml")
    if not listed_parts(rule):
        what = "none of its parts" if rule.join else f"it listens to {rule.source}:"
        raise PermanentError(
            f"route {route!r} cannot be backfilled, {what} backfill lists buckets (storage) and cron "
            "slots (schedule); a Pub/Sub message or a BigQuery job cannot be listed "
            "(`kfp-trigger replay` sends kept events again)"
        )
    return rule


def listed_parts(rule: Rule) -> list[Rule]:
    """What of `rule` a backfill can list: the route, or a join's storage and schedule parts."""
    return [part for part in (rule.join.parts if rule.join else (rule,)) if part.source in LISTABLE]


def unlisted_parts(rule: Rule) -> list[str]:
    """A join's parts a backfill cannot list (their events: `replay`)."""
    return [part.part for part in rule.join.parts if part.source not in LISTABLE] if rule.join else []


def candidates(services: Services, rule: Rule, since: datetime, until: datetime) -> Iterator[Candidate]:
    """What `rule` (or each listable part of a join) may have missed in [since, until), oldest
    slot or first name first."""
    for listed in listed_parts(rule):
        yield from _listed(services, listed, since, until)


def _listed(services: Services, rule: Rule, since: datetime, until: datetime) -> Iterator[Candidate]:
    if rule.source is Source.SCHEDULE:
        yield from _slots(rule, since, until, services.settings.schedules_topic)
        return
    if services.objects is None:
        raise PermanentError("no object store is configured (KFP_TRIGGER_STORAGE) to list the bucket")
    pattern = rule.pattern
    prefix = re.split(r"[{*]", pattern.text, maxsplit=1)[0] if pattern is not None else ""
    for stored in services.objects.objects(rule.index, prefix):
        if stored.updated is None or not since <= stored.updated < until:
            continue
        if pattern is not None and pattern.match(stored.name) is None:
            continue
        what = f"gs://{rule.index}/{stored.name}#{stored.generation}"
        delivery = object_finalized(
            rule.index,
            stored.name,
            generation=stored.generation,
            size=stored.size,
            updated=stored.updated,
            content_type=stored.content_type,
            event_id=_event_id(what),
        )
        yield Candidate(what, delivery)


def _slots(rule: Rule, since: datetime, until: datetime, topic: str) -> Iterator[Candidate]:
    from zoneinfo import ZoneInfo

    from croniter import croniter

    slots = croniter(rule.cron, (since - timedelta(seconds=1)).astimezone(ZoneInfo(rule.timezone)))
    while (slot := slots.get_next(datetime)) < until:
        what = f"{rule.index}@{slot.astimezone(UTC).isoformat()}"
        tick = scheduler_tick(rule.index, slot, message_id=_event_id(what), topic=topic)
        yield Candidate(what, tick, slot)


def _event_id(what: str) -> str:
    return EVENT_ID_PREFIX + hashlib.sha256(what.encode()).hexdigest()[:32]


def backfill(
    services: Services,
    rule: Rule,
    since: datetime,
    until: datetime,
    *,
    dry_run: preview.Reader | None = None,
    step: Callable[[dict[str, object]], None] = lambda decision: None,
    stop: Callable[[], bool] = lambda: False,
) -> Report:
    """Send each candidate through the intake of `rule` alone, or, given a `dry_run` reader,
    through the preview (writing nothing); `step` gets each decision as it is made. `stop` is
    asked between two candidates, never during one: a stop leaves nothing half done (no claim
    held), and the report says it was interrupted."""
    alone = replace(services, router=Router((rule,)))
    report = Report(rule.name, dry_run is not None)
    for candidate in candidates(services, rule, since, until):
        if stop():
            report.interrupted = True
            break
        report.candidates += 1
        headers, data = candidate.delivery
        body = _body(data)
        attributes, parsed = parse_http(headers, body)
        entry: dict[str, object] = {"what": candidate.what, "event_id": headers["ce-id"]}
        if dry_run is not None:
            entry |= _previewed(alone, decode(attributes, parsed, services.settings.schedules_topic), dry_run)
        else:
            handled = intake.handle(alone, attributes, parsed, body)
            decisions = handled.body.get("decisions")
            first = decisions[0] if isinstance(decisions, list) and decisions else dict(handled.body)
            entry |= {k: first[k] for k in ("outcome", "run_key", "reason") if k in first}
        report.outcomes[str(entry.get("outcome", "?"))] += 1
        report.decisions.append(entry)
        step(entry)
    return report


def _previewed(services: Services, event: object, reader: preview.Reader) -> dict[str, object]:
    assert isinstance(event, TriggerEvent)  # built by `candidates`: always a routable event
    router = services.router
    found = preview.preview(event, router.route(event), router, services.catalog, reader)
    if found.refused:
        return {"outcome": "quarantined", "reason": found.refused}
    (decision,) = found.decisions
    return {
        "outcome": decision["verdict"],
        "run_key": decision.get("run_key", ""),
        "reason": decision["reason"],
    }


def _body(data: object) -> bytes:
    return json.dumps(data).encode()


CAUGHT_UP = "caught-up/"  # + route: the high-water mark (Unix seconds) below which slots were sent
NOT_ACKNOWLEDGED = (Outcome.RETRY, Outcome.BUSY)


def catch_up(services: Services) -> Pass:
    """Send every schedule route with `schedule.catch_up` the slots of its horizon not sent yet,
    older than `reconcile_grace_seconds` (the live tick's moment); how many runs that started."""
    report = Pass()
    now = services.clock()
    settled = datetime.fromtimestamp(now - services.settings.reconcile_grace_seconds, UTC)
    for rule in services.router.rules:
        if rule.source is not Source.SCHEDULE or rule.catch_up is None:
            continue
        mark = services.quotas.mark(CAUGHT_UP + rule.name)
        since = datetime.fromtimestamp(max(now - rule.catch_up, mark), UTC)
        alone = replace(services, router=Router((rule,)))
        reached = settled
        for candidate in _slots(rule, since, settled, services.settings.schedules_topic):
            headers, data = candidate.delivery
            body = _body(data)
            handled = intake.handle(alone, *parse_http(headers, body), body)
            if any(outcome in NOT_ACKNOWLEDGED for outcome in handled.outcomes):
                reason = f"catching up {candidate.what}: not started yet (next pass)"
                report.skipped.append({"run_key": candidate.what, "reason": reason})
                reached = candidate.slot or reached
                break
            report.done += handled.outcomes.count(Outcome.RUN)
        services.quotas.raise_mark(CAUGHT_UP + rule.name, int(reached.timestamp()), now)
    return report
