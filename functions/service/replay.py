"""`kfp-trigger replay`'s use case: send a kept event through the intake again, after a
routes.yaml fix.

Every event delivered to `handle_event` is kept in the ledger within retention (its CloudEvent
attributes and data, `DecisionLog.keep`; the latest decision says whether it was quarantined).
A replay hands it to `intake.handle` as it came, so the normal deduplication holds: a run it
already started is a duplicate, and a quarantined event that a fixed routes.yaml now routes
starts its run once.
"""

from __future__ import annotations

import json

from events.errors import PermanentError
from functions.service import intake
from functions.service.ports import Services


def replay(services: Services, event_id: str) -> dict[str, object]:
    """Replay one kept event: what the intake decided, as its answer's `decisions` (or its
    outcome and reason).

    Raises:
        PermanentError: no event with this id is kept (never delivered, past retention, or too
            large to keep).
    """
    event = services.decisions.kept(event_id)
    if event is None or not event.data:
        why = (
            "too large to keep" if event is not None else "not kept (never delivered here, or past retention)"
        )
        raise PermanentError(f"event {event_id!r} is {why}")
    body = event.data.encode()
    handled = intake.handle(services, dict(event.attributes), json.loads(event.data), body)
    entry: dict[str, object] = {"event_id": event_id, "was": event.reason or "routed"}
    return entry | dict(handled.body)


def quarantined(services: Services, since: float, reason: str = "") -> list[str]:
    """The ids of the kept events quarantined since `since` whose reason contains `reason`."""
    return [event.event_id for event in services.decisions.quarantined(since) if reason in event.reason]
