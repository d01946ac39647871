"""What should have happened and did not: data a route expects (`expect`), and bursts of
quarantined events. Checked by every reconcile pass; each finding is recorded and alerted once.

Freshness: the intake raises a per-route mark to the arrival time of every event the route
takes (`seen`; written with the event's first commit); after each window's end (`expect.every`
windows ending at `expect.by`, in its time zone) the first reconcile pass looks at the mark: no
event since the window opened means "expected data absent", recorded as a decision (event id
`freshness/<route>@<end>`, `kfp-trigger explain` finds it) and alerted. A mark per route keeps
the last window checked, so each window is judged once.

Quarantine bursts: `KFP_TRIGGER_QUARANTINE_BURST` or more events quarantined since the previous
pass are alerted once (a mark keeps the count at the last pass).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from events.errors import TransientError
from events.rules import Rule
from events.schema import Expect
from functions.service import passes, trail
from functions.service.alerts import Alert, explain_command, raise_alert
from functions.service.ports import Services
from functions.service.records import MarkRaise, Outcome, iso

SEEN = "seen/"  # + route: the arrival time (Unix seconds) of the route's latest event
CHECKED = "fresh-until/"  # + route: the end of the last window judged
QUARANTINED = "quarantined-count"  # the number of quarantined events at the last pass
MISSED_TYPE = "freshness.missed"  # the event type of the decision a missed window records


def seen(rule: Rule, now: float) -> tuple[MarkRaise, ...]:
    """An event for `rule` arrived `now`: the mark to raise if the route has `expect`."""
    return () if rule.expect is None else (MarkRaise(SEEN + rule.name, int(now), now),)


def last_window(expect: Expect, now: float) -> tuple[float, float]:
    """The latest window of `expect` that has ended at `now`: (start, end), Unix seconds. Window
    ends are `by` plus whole windows, in local wall time (so a day's windows survive DST)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(expect.timezone)
    local = datetime.fromtimestamp(now, zone)
    hours, minutes = map(int, expect.by.split(":"))
    per_day = round(86400 / expect.every)
    ends = [
        datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)
        + timedelta(seconds=k * expect.every)
        for day in (local.date() - timedelta(days=1), local.date())
        for k in range(per_day)
    ]
    end = max(moment.timestamp() for moment in ends if moment.timestamp() <= now)
    return end - expect.every, end


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
            if services.quotas.mark(SEEN + rule.name) < start:
                _missed(services, rule, start, end)
                report.done += 1
        except TransientError as exc:  # judged again next pass
            report.skipped.append({"run_key": f"freshness/{rule.name}", "reason": f"{exc} (next pass)"})
            continue
        services.quotas.raise_mark(CHECKED + rule.name, int(end), now)
    try:
        _bursts(services)
    except TransientError as exc:
        report.skipped.append({"run_key": "quarantine-burst", "reason": f"{exc} (next pass)"})
    return report


def _missed(services: Services, rule: Rule, start: float, end: float) -> None:
    window = f"{rule.name}@{iso(end)}"
    reason = f"expected data absent: no event for route {rule.name} between {iso(start)} and {iso(end)}"
    alert = Alert(
        kind="freshness.missed",
        route=rule.name,
        subject=window,
        summary=reason,
        explain=explain_command(f"freshness/{window}"),
    )
    raise_alert(services, alert)  # first: if it cannot be sent, the window is judged again next pass
    trail.record(services, f"freshness/{window}", "", MISSED_TYPE, Outcome.SKIPPED, reason, route=rule.name)


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
