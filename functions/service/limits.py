"""Cost bounds: the places a run must hold before it starts, the pause switch, event age.

Every bound is enforced in the ledger, so it holds across instances:

- pause: the ledger flag `paused` (`kfp-trigger pause` / `resume`) or KFP_TRIGGER_PAUSED=true;
- `limits.daily_submissions` (top level): one place per run in scope `daily:<UTC date>`;
- `limits.rate` (per route): one place per run in `rate:<route>:<window number>`;
- `limits.max_active` (per route): one place per run in `active:<route>`, given back when it ends;
- `limits.concurrency` (per route and key, e.g. tenant): one place per run in
  `key:<route>:<key>`, given back when it ends; a newer run of a full key waits, with
  `on_newer: skip` ends SKIPPED, or with `on_newer: supersede` has the older runs cancelled
  (`service/supersede.py`) and starts when the engine reports them ended.

Which places a run needs (`places`) and whether an event is too old (`too_old`) are pure; `admit`
takes the places. A run that cannot take every place gives back what it took and waits in the
ledger's queue (QUEUED, with the reason); `passes.start_queued` tries again when a run ends, on
every reconcile pass and on `resume`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from events.schema_limits import GlobalLimits, RouteLimits
from functions.service.ports import Services
from functions.service.records import NewRun

PAUSED = "paused"  # the ledger flag
PAUSED_REASON = "submissions are paused"


@dataclass(frozen=True, slots=True)
class Place:
    scope: str
    limit: int
    what: str
    every_route: bool = False  # while it is full, no queued run of any route may start
    on_newer: str = "queue"  # limits.concurrency.on_newer: what a newer run does while it is full


def active_scope(route: str) -> str:
    return f"active:{route}"


def key_scope(route: str, key: str) -> str:
    return f"key:{route}:{key}"


def route_limits(services: Services, route: str) -> RouteLimits:
    rule = services.router.by_name.get(route)
    return rule.limits if rule is not None else RouteLimits()


def places(
    route: str, limits: RouteLimits, global_limits: GlobalLimits, now: float, key: str = ""
) -> list[Place]:
    """Every place a run of `route` (with concurrency key `key`) must hold to start at `now`."""
    found: list[Place] = []
    daily = global_limits.daily_submissions
    if daily is not None:
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        found.append(Place(f"daily:{day}", daily, f"daily_submissions {daily}", every_route=True))
    if limits.rate is not None:
        rate = limits.rate
        window = int(now // rate.per)
        found.append(Place(f"rate:{route}:{window}", rate.runs, f"rate {rate.runs} per {rate.per:g} s"))
    if limits.max_active is not None:
        found.append(Place(active_scope(route), limits.max_active, f"max_active {limits.max_active}"))
    if limits.concurrency is not None and key:
        per_key = limits.concurrency
        what = f"concurrency.max_active {per_key.max_active} for key {key!r}"
        found.append(Place(key_scope(route, key), per_key.max_active, what, on_newer=per_key.on_newer))
    return found


@dataclass(frozen=True, slots=True)
class Wait:
    """Why a run must wait in the queue."""

    reason: str
    every_route: bool  # the pause or a global limit: no queued run of any route may start now
    on_newer: str = "queue"  # limits.concurrency.on_newer of the full key: queue, skip or supersede
    scope: str = ""  # the full place's scope


def paused(services: Services) -> bool:
    return services.settings.paused or services.quotas.flag(PAUSED)


def admit(services: Services, run: NewRun, paused_now: bool | None = None) -> Wait | None:
    """Take every place `run` needs; None if it may start, else why it must wait (and it holds
    nothing then). `paused_now`: the pause flag, if the caller has read it already."""
    if services.settings.paused or (paused(services) if paused_now is None else paused_now):
        return Wait(PAUSED_REASON, every_route=True)
    now = services.clock()
    held: list[str] = []
    for place in places(run.route, route_limits(services, run.route), services.limits, now, run.concurrency):
        if not _hold(services, place, run.run_key, now):
            for taken in held:
                services.quotas.let_go(taken, run.run_key)
            return Wait(f"{place.what} reached", place.every_route, place.on_newer, place.scope)
        held.append(place.scope)
    return None


def _hold(services: Services, place: Place, holder: str, now: float) -> bool:
    """Take a place; when it is full, first give back the places of holders that have ended
    (a run's end and the return of its places are two writes: an instance can die between
    them), then try once more."""
    if services.quotas.hold(place.scope, place.limit, holder, now):
        return True
    if not place.scope.startswith(("active:", "key:")):
        return False  # rate and daily places count starts: they are never given back
    freed = False
    for other in services.quotas.holders(place.scope):
        record = services.store.get(other)
        if record is None or record.state.terminal:
            services.quotas.let_go(place.scope, other)
            freed = True
    return freed and services.quotas.hold(place.scope, place.limit, holder, now)


def ended(services: Services, run: NewRun) -> None:
    """A run ended: give its active and key places back (rate and daily places count starts;
    they stay)."""
    if route_limits(services, run.route).max_active is not None:
        services.quotas.let_go(active_scope(run.route), run.run_key)
    if run.concurrency:
        services.quotas.let_go(key_scope(run.route, run.concurrency), run.run_key)


def too_old(limits: RouteLimits, time: datetime | None, now: float) -> str | None:
    """Why an event is too old for a route with these `limits` (its `max_age`), or None."""
    if limits.max_age is None or time is None:
        return None
    age = now - time.timestamp()
    return (
        f"event is {age:.0f} s old, older than max_age {limits.max_age:g} s" if age > limits.max_age else None
    )
