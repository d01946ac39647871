"""Schedule ticks: each schedule route's cron, posted as the Pub/Sub message a Cloud Scheduler
job with a Pub/Sub target publishes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from events.eventarc import scheduler_tick
from events.pubsub import SCHEDULES_TOPIC
from events.rules import Rule, listeners
from functions.logs import fields

log = logging.getLogger("kfp_trigger.dev")


def tick_schedules(
    rules: Sequence[Rule] | Callable[[], Sequence[Rule]],
    send: Callable[[dict[str, str], dict[str, object]], object],
    stop: threading.Event,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    interval: float = 1.0,
    topic: str = SCHEDULES_TOPIC,
) -> None:
    """Send one Scheduler-shaped tick per schedule route whenever its cron comes due, on the
    schedules topic `topic` (a short name). `rules` may be a callable, asked at every turn: the
    routes as `dev` reloads them."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    def next_slot(rule: Rule, after: datetime) -> datetime:
        slot: datetime = croniter(rule.cron, after.astimezone(ZoneInfo(rule.timezone))).get_next(datetime)
        return slot

    def schedules() -> list[Rule]:  # a join's schedule parts too
        return [rule for rule in listeners(tuple(rules() if callable(rules) else rules)) if rule.cron]

    upcoming = {(rule.name, rule.cron, rule.timezone): next_slot(rule, clock()) for rule in schedules()}
    while not stop.wait(interval):
        now = clock()
        for rule in schedules():
            key = (rule.name, rule.cron, rule.timezone)
            if key not in upcoming:  # a schedule routes.yaml gained
                upcoming[key] = next_slot(rule, now)
            elif upcoming[key] <= now:
                log.info("schedule fired", extra=fields(job=rule.index))
                send(*scheduler_tick(rule.index, now, topic=topic))
                upcoming[key] = next_slot(rule, now)
