"""Join routes: one run per correlation key and window, once its parts have arrived.

A join route's parts are matched like routes of their own (the router renders each part's
correlation key and reads the fields the run needs). Each arrival is recorded in the key's
window in the ledger (`RunQueue.arrive`, one atomic step; `windows.fold` reads the window from
its arrivals: which arrival of each part counts, `require`, late arrivals). Every arrival that
finds its window COMPLETE builds the run from the counted parts (`run_for`, pure) and launches
it: they all build the same run key, whose claim is create-if-absent, so a window starts one
run whatever the order, the duplicates and the concurrency of its parts. A late arrival (new
content after the window completed) is recorded, or with `on_late: rerun` starts one run of its
own, `…~late-N`, as exactly once. A window that closes with parts missing is recorded EXPIRED by
reconcile (`expire`), with a decision per arrived part naming what is missing; `on_expire:
alert` also sends an alert (service/alerts.py) and logs the `join expired (alert)` line the
deployed alert policy counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from functools import partial

from events.errors import PermanentError
from events.model import TriggerEvent
from events.router import Decision, RunRequest, request
from events.rules import Rule, pipeline_of
from functions.logs import fields
from functions.service import passes, runs, trail
from functions.service.alerts import Alert, explain_command, raise_alert
from functions.service.guards import Arrive
from functions.service.ports import Services
from functions.service.records import NewRun, Outcome, iso
from functions.service.windows import JoinState, JoinStatus, Part, Terms
from pipelines.backend import CompiledPipeline
from pipelines.parameters import JOIN_PARTS_PARAMETER

log = logging.getLogger("kfp_trigger.joins")
ALERT = "join expired (alert)"  # the log line deploy/terraform/alerts.tf counts
EXPIRED_TYPE = "join.expired"  # the event type of the decisions an expiry records


def join_rule(services: Services, route: str) -> Rule:
    rule = services.router.by_name.get(route)
    if rule is None or rule.join is None:
        raise PermanentError(f"route {route!r} is not a join route in routes.yaml")
    return rule


def terms(rule: Rule) -> Terms:
    """What a join route asks of its windows."""
    assert rule.join is not None
    join = rule.join
    return Terms(join.names, join.within, join.needed, join.latest)


def arrive(services: Services, event: TriggerEvent, step: Arrive) -> tuple[Outcome, dict[str, object]]:
    """Record one part of a join, and launch the window's run once it is complete (and a late
    part's own run, with `on_late: rerun`): the outcome, and the entry for the answer's
    `decisions`."""
    rule = join_rule(services, step.route)
    assert rule.join is not None
    part, now = step.part, services.clock()
    arrival = Part(event.envelope.id, event.key, now, step.part.values)
    window = services.queue.arrive(rule.name, part.key, part.name, arrival, terms(rule), now)
    entry: dict[str, object] = {"route": rule.name, "part": part.name, "key": part.key}
    note = partial(trail.record, services, event.envelope.id, event.key, event.envelope.type, route=rule.name)
    counts = window.counts(part.name, event.envelope.id)
    if window.status is not JoinStatus.COMPLETE:
        outcome, reason = (
            (Outcome.QUEUED, describe(rule.join.names, window, rule.join.needed))
            if counts and window.added
            else _repeat(part.name, window)
        )
        note(outcome, reason)
        return outcome, entry | {"outcome": outcome, "reason": reason}
    parts, what = (
        dict(window.parts),
        (f"part {part.name!r} completed join {part.key!r}" if counts else _repeat(part.name, window)[1]),
    )
    suffix = ""
    if window.late_number:
        late = window.late[window.late_number - 1]
        what = f"late part {part.name!r} of join {part.key!r} (on_late: {rule.join.on_late})"
        if rule.join.on_late == "rerun":
            parts[late.part], suffix = late.event, f"~late-{window.late_number}"
    built = run_for(rule, replace(window, parts=parts), services.catalog, event.envelope.id)
    if isinstance(built, str):
        reason = f"join {part.key!r} is complete but its run cannot be built: {built}"
        note(Outcome.SKIPPED, reason)
        return Outcome.SKIPPED, entry | {"outcome": Outcome.SKIPPED, "reason": reason}
    built = replace(built, run_key=built.run_key + suffix)
    launched = trail.Recorder(services, built, event.envelope.type, event.key, prefix=f"{what}: ")
    outcome, detail = runs.launch(services, built, runs.pipeline_for(services, built), launched)
    return outcome, entry | {"outcome": outcome, "run_key": built.run_key, **runs.answered(detail)}


def _repeat(name: str, window: JoinState) -> tuple[Outcome, str]:
    first = window.parts.get(name)
    if first is None:  # this event filled another part (routes check refuses parts that overlap)
        return Outcome.DUPLICATE, f"the event arrived already as another part of join {window.key!r}"
    return Outcome.DUPLICATE, f"part {name!r} of join {window.key!r} arrived already (event {first.event_id})"


def describe(names: tuple[str, ...], window: JoinState, needed: int = 0) -> str:
    """A window's story in one line (`names`: the join's parts; `needed`: how many complete it,
    0 for all): waiting on what until when, complete, or expired missing what."""
    missing = ", ".join(f"`{name}`" for name in window.missing(names))
    if 0 < needed < len(names):
        missing = f"{needed - len(window.parts)} more of {missing}"
    match window.status:
        case JoinStatus.OPEN:
            return f"join {window.key!r}: waiting on {missing}, expires {iso(window.expires)}"
        case JoinStatus.EXPIRED:
            return f"join {window.key!r} expired at {iso(window.expires)}: missing {missing}"
        case JoinStatus.COMPLETE:
            arrived = "every part" if not window.missing(names) else ", ".join(f"`{n}`" for n in window.parts)
            late = f"; {len(window.late)} late arrival(s) since" if window.late else ""
            return f"join {window.key!r} complete: {arrived} arrived{late}"


def window_request(rule: Rule, window: JoinState) -> Decision:
    """The route's request (run key, params, partition) from a window's counted parts."""
    values: dict[str, object] = {"route": rule.name, "key": window.key, "join.opened": iso(window.opened)}
    for name, part in window.parts.items():
        values |= {f"parts.{name}.{path}": value for path, value in part.values.items()}
    return request(rule, values, None)


def run_for(
    rule: Rule, window: JoinState, catalog: Mapping[str, CompiledPipeline], event_id: str
) -> NewRun | str:
    """The run of a COMPLETE window, built from its parts' recorded fields (pure: every arrival
    that finds the window complete builds the same run key), or why it cannot be built."""
    built = window_request(rule, window)
    if not isinstance(built, RunRequest):
        return built.reason
    pipeline = catalog[pipeline_of(rule, built.run_key)]
    listed = {
        name: {"event_id": part.event_id, "event_key": part.event_key, "fields": dict(part.values)}
        for name, part in sorted(window.parts.items())
    }
    return NewRun(
        run_key=built.run_key,
        route=rule.name,
        pipeline=pipeline.name,
        version=pipeline.version,
        backend=pipeline.backend,
        params={**built.params, JOIN_PARTS_PARAMETER: listed},
        event_id=event_id,
        concurrency=built.concurrency,
        partition=built.partition,
        fresh_key=built.fresh_key,
    )


def expire(services: Services) -> passes.Pass:
    """Record every OPEN window whose time is up EXPIRED (once, whichever reconciler gets there
    first) `join_grace_seconds` after it closed (instances' clocks may differ: a part that one
    accepted just before `expires` is never in a window another has expired), with a decision
    for each part that arrived naming the missing ones. A window that fails is reported and
    left for the next pass."""
    report = passes.Pass()
    closed_before = services.clock() - services.settings.join_grace_seconds  # clocks may differ
    for window in services.queue.joins(status=JoinStatus.OPEN):
        if window.expires > closed_before:
            continue
        try:
            report.done += _expire_one(services, window, closed_before)
        except Exception as exc:  # isolation: one window cannot hold up the pass
            log.exception(
                "join window left for the next pass", extra=fields(route=window.route, key=window.key)
            )
            reason = f"expiring join {window.key!r}: {exc or type(exc).__name__} (next pass)"
            report.skipped.append({"run_key": f"{window.route}/{window.key}", "reason": reason})
    return report


def _expire_one(services: Services, window: JoinState, closed_before: float) -> int:
    rule = services.router.by_name.get(window.route)
    expired = replace(window, status=JoinStatus.EXPIRED)
    if rule is None or rule.join is None:
        reason, alert = f"join {window.key!r} expired: its route is not in routes.yaml any more", False
    else:
        join = rule.join
        reason, alert = describe(join.names, expired, join.needed), join.on_expire == "alert"
    if alert:  # first: an alert that cannot be sent now leaves the window for the next pass
        explain = explain_command(window.key)
        summary = f"route {window.route}: {reason}"[:500]
        subject = f"{window.key}@{iso(window.opened)}"
        raise_alert(
            services,
            Alert(kind="join.expired", route=window.route, subject=subject, summary=summary, explain=explain),
        )
    if not services.queue.expire(window.route, window.key, window.opened, closed_before):
        return 0  # completed meanwhile, or another reconciler recorded it
    for part in window.parts.values():
        trail.record(
            services, part.event_id, part.event_key, EXPIRED_TYPE, Outcome.SKIPPED, reason, route=window.route
        )
    context = fields(route=window.route, key=window.key, reason=reason)
    if alert:
        log.error(ALERT, extra=context)
    else:
        log.info("join expired", extra=context)
    return 1
