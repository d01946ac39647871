"""Schedule ticks: each schedule route's cron, posted as the Pub/Sub message a Cloud Scheduler
job with a Pub/Sub target publishes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from events.eventarc import scheduler_tick
from events.pubsub import SCHEDULES_TOPIC
from events.rules import Rule, listeners
from functions.logs import fields

log = logging.getLogger("kfp_trigger.dev")


def tick_schedules(
    rules: tuple[Rule, ...],
    send: Callable[[dict[str, str], dict[str, object]], object],
    stop: threading.Event,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    interval: float = 1.0,
    topic: str = SCHEDULES_TOPIC,
) -> None:
    """Send one Scheduler-shaped tick per schedule route whenever its cron comes due, on the
    schedules topic `topic` (a short name)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    def next_slot(rule: Rule, after: datetime) -> datetime:
        slot: datetime = croniter(rule.cron, after.astimezone(ZoneInfo(rule.timezone))).get_next(datetime)
        return slot

    schedules = [rule for rule in listeners(rules) if rule.cron]  # a join's schedule parts too
    upcoming = {rule.name: next_slot(rule, clock()) for rule in schedules}
    while schedules and not stop.wait(interval):
        now = clock()
        for rule in schedules:
            if upcoming[rule.name] <= now:
                log.info("schedule fired", extra=fields(job=rule.index))
                send(*scheduler_tick(rule.index, now, topic=topic))
                upcoming[rule.name] = next_slot(rule, now)
