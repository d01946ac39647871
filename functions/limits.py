"""Cost bounds: the places a run must hold before it starts, the pause switch, event age.

Every bound is enforced in the ledger, so it holds across instances:

- pause: the ledger flag `paused` (`kfp-trigger pause` / `resume`) or KFP_TRIGGER_PAUSED=true;
- `limits.daily_submissions` (top level): one place per run in scope `daily:<UTC date>`;
- `limits.rate` (per route): one place per run in `rate:<route>:<window number>`;
- `limits.max_active` (per route): one place per run in `active:<route>`, given back when it ends.

A run that cannot take every place gives back what it took and waits in the ledger's queue
(QUEUED, with the reason); dispatch.start_queued tries again when a run ends, on every reconcile
pass and on `resume`. Coalescing windows and the generation high-water mark live in dispatch,
where the event is at hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from events.routes import RouteLimits
from functions.ledger import NewRun

if TYPE_CHECKING:
    from functions.bootstrap import Services

PAUSED = "paused"
PAUSED_REASON = "submissions are paused"
DAILY = "daily_submissions"


def active_scope(route: str) -> str:
    return f"active:{route}"


def holds_every_route(reason: str) -> bool:
    """Whether a run held back for `reason` means no queued run of any route may start now."""
    return reason == PAUSED_REASON or reason.startswith(DAILY)


def paused(services: Services) -> bool:
    return services.settings.paused or services.ledger.flag(PAUSED)


def route_limits(services: Services, route: str) -> RouteLimits:
    rule = services.router.by_name.get(route)
    return rule.limits if rule is not None else RouteLimits()


def places(services: Services, route: str, now: float) -> list[tuple[str, int, str]]:
    """(scope, limit, what) for every place a run of `route` must hold to start now."""
    found: list[tuple[str, int, str]] = []
    daily = services.limits.daily_submissions
    if daily is not None:
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        found.append((f"daily:{day}", daily, f"{DAILY} {daily}"))
    limits = route_limits(services, route)
    if limits.rate is not None:
        rate = limits.rate
        window = int(now // rate.per)
        found.append((f"rate:{route}:{window}", rate.runs, f"rate {rate.runs} per {rate.per:g} s"))
    if limits.max_active is not None:
        found.append((active_scope(route), limits.max_active, f"max_active {limits.max_active}"))
    return found


def admit(services: Services, run: NewRun) -> str | None:
    """Take every place `run` needs; None if it may start, else why it must wait (and it holds
    nothing then)."""
    if paused(services):
        return PAUSED_REASON
    now = services.clock()
    held: list[str] = []
    for scope, limit, what in places(services, run.route, now):
        if not services.ledger.hold(scope, limit, run.run_key, now):
            for taken in held:
                services.ledger.let_go(taken, run.run_key)
            return f"{what} reached"
        held.append(scope)
    return None


def ended(services: Services, route: str, run_key: str) -> None:
    """A run ended: give its active place back (rate and daily places count starts; they stay)."""
    if route_limits(services, route).max_active is not None:
        services.ledger.let_go(active_scope(route), run_key)


def too_old(services: Services, route: str, time: datetime | None) -> str | None:
    """Why an event is too old for `route` (its `limits.max_age`), or None."""
    max_age = route_limits(services, route).max_age
    if max_age is None or time is None:
        return None
    age = services.clock() - time.timestamp()
    return f"event is {age:.0f} s old, older than max_age {max_age:g} s" if age > max_age else None
