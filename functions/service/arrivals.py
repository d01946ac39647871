"""Arrivals a route expects (`expect.by`): the windows they are judged in, and the per-route
`seen` mark the intake raises (with the event's first commit) when an event arrives in a window
the mark has not reached yet. `watch` judges each ended window by that mark."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from events.rules import Rule
from events.schema_limits import Expect
from functions.service.records import MarkRaise

SEEN = "seen/"  # + route: the arrival time (Unix seconds) of an event in the route's latest window


def marks_to_read(rules: Iterable[Rule]) -> list[str]:
    """The `seen` marks of the routes among `rules` that expect arrivals (read with the event's
    one read, so that `seen` knows whether to raise them)."""
    return sorted(
        {SEEN + rule.name for rule in rules if rule.expect is not None and rule.expect.by is not None}
    )


def seen(rule: Rule, now: float, marks: Mapping[str, int]) -> tuple[MarkRaise, ...]:
    """An event for `rule` arrived `now`: the mark to raise if the route has `expect` and its
    mark (as read in `marks`) lies before the window `now` is in. Judging a window asks only
    whether the mark reached its start, so one raise per window is enough, and a burst on the
    route does not write one document per event (Firestore sustains about one write per second
    to a document: firebase.google.com/docs/firestore/best-practices#high_read_write_and_delete_rates)."""
    if rule.expect is None or rule.expect.by is None:
        return ()
    key = SEEN + rule.name
    if key in marks and marks[key] >= last_window(rule.expect, now)[1]:
        return ()
    return (MarkRaise(key, int(now), now),)


def last_window(expect: Expect, now: float) -> tuple[float, float]:
    """The latest window of `expect` that has ended at `now`: (start, end), Unix seconds. Window
    ends are `by` plus whole windows, in local wall time (so a day's windows survive DST)."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(expect.timezone)
    local = datetime.fromtimestamp(now, zone)
    hours, minutes = map(int, expect.deadline.split(":"))
    per_day = round(86400 / expect.every)
    ends = [
        datetime(day.year, day.month, day.day, hours, minutes, tzinfo=zone)
        + timedelta(seconds=k * expect.every)
        for day in (local.date() - timedelta(days=1), local.date())
        for k in range(per_day)
    ]
    end = max(moment.timestamp() for moment in ends if moment.timestamp() <= now)
    return end - expect.every, end
