"""What should have happened and did not: data a route expects (`expect`), and bursts of
quarantined events. Checked by every reconcile pass; each finding is recorded and alerted once.
A window that ended before the route was first seen (the first pass that saw it records when,
`first-seen/<route>`) is not judged: a route added today is never late for yesterday.

Outcomes (`expect.succeeded_by`, per key): see `freshness`. Arrivals (`expect.by`): the intake
raises a per-route mark to the arrival time of every event the route takes (`seen`; written with
the event's first commit); after each window's end (`expect.every` windows ending at
`expect.by`, in its time zone) the first reconcile pass looks at the mark: no event since the
window opened means "expected data absent", recorded as a decision (event id
`freshness/<route>@<end>`, `kfp-trigger explain` finds it) and alerted. A mark per route keeps
the last window checked, so each window is judged once.

Quarantine bursts: `KFP_TRIGGER_QUARANTINE_BURST` or more events quarantined since the previous
pass are alerted once (a mark keeps the count at the last pass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from events.errors import TransientError
from events.rules import Rule
from functions.service import freshness, passes, trail
from functions.service.alerts import Alert, Kind, explain_command, raise_alert
from functions.service.arrivals import SEEN, last_window
from functions.service.ports import Services
from functions.service.records import Outcome, iso

if TYPE_CHECKING:
    from functions.service.ledger import Ledger

FIRST_SEEN = "first-seen/"  # + route: when a reconcile pass first saw it (Unix seconds)
CHECKED = "fresh-until/"  # + route: the end of the last window judged
QUARANTINED = "quarantined-count"  # the number of quarantined events at the last pass
MISSED_TYPE: Kind = "freshness.missed"  # the event type of the decision a missed window records
LATE_TYPE: Kind = "freshness.late"  # and of a key's late outcome


def check(services: Services) -> passes.Pass:
    """Judge every route's last ended window, and the quarantine count; alert what is missing."""
    report = passes.Pass()
    now = services.clock()
    for rule in services.router.rules:
        if rule.expect is None:
            continue
        start, end = last_window(rule.expect, now)
        if services.quotas.mark(CHECKED + rule.name) >= end:
            continue  # judged already
        try:
            if end > _first_seen(services, rule.name, now):
                report.done += _judge(services, rule, start, end)
        except TransientError as exc:  # judged again next pass
            report.skipped.append({"run_key": f"freshness/{rule.name}", "reason": f"{exc} (next pass)"})
            continue
        services.quotas.raise_mark(CHECKED + rule.name, int(end), now)
    try:
        _bursts(services)
    except TransientError as exc:
        report.skipped.append({"run_key": "quarantine-burst", "reason": f"{exc} (next pass)"})
    return report


def _first_seen(services: Services, route: str, now: float) -> float:
    """When a reconcile pass first saw `route` (this one, if none did before)."""
    return services.quotas.mark(FIRST_SEEN + route) or services.quotas.raise_mark(
        FIRST_SEEN + route, int(now), now
    )


def _judge(services: Services, rule: Rule, start: float, end: float) -> int:
    """Judge one ended window of `rule`; how many alerts it raised."""
    assert rule.expect is not None
    if rule.expect.by is not None:
        if services.quotas.mark(SEEN + rule.name) >= start:
            return 0
        _missed(services, rule, start, end)
        return 1
    ledger = cast("Ledger", services.store)  # bootstrap wires one ledger to every ledger port
    late = freshness.late_keys(ledger, rule, start, end)
    for each in late:
        _late(services, rule, each, end)
    return len(late)


def _late(services: Services, rule: Rule, late: freshness.Late, end: float) -> None:
    _told(services, rule, LATE_TYPE, f"{rule.name}/{late.key}@{iso(end)}", late.cause, late.explain)


def _missed(services: Services, rule: Rule, start: float, end: float) -> None:
    reason = f"expected data absent: no event for route {rule.name} between {iso(start)} and {iso(end)}"
    window = f"{rule.name}@{iso(end)}"
    _told(services, rule, MISSED_TYPE, window, reason, f"freshness/{window}")


def _told(services: Services, rule: Rule, kind: Kind, window: str, reason: str, story: str) -> None:
    """Alert a window judged late (`kind` is also its decision's event type), then record it under
    the event id freshness/WINDOW, where `explain` finds it; `story` is what explain is asked."""
    alert = Alert(
        kind=kind, route=rule.name, subject=window, summary=reason[:500], explain=explain_command(story)
    )
    raise_alert(services, alert)  # first: if it cannot be sent, the window is judged again next pass
    trail.record(services, f"freshness/{window}", "", kind, Outcome.SKIPPED, reason, route=rule.name)


def _bursts(services: Services) -> None:
    count = services.decisions.count_decisions(Outcome.QUARANTINED)
    before = services.quotas.mark(QUARANTINED)
    if count - before >= services.settings.quarantine_burst:
        alert = Alert(
            kind="quarantine.burst",
            route="",
            subject=f"quarantined {before + 1}-{count}",
            summary=f"{count - before} events quarantined since the last check ({count} in all)",
            explain="kfp-trigger status",
        )
        raise_alert(services, alert)
    if count > before:
        services.quotas.raise_mark(QUARANTINED, count, services.clock())
