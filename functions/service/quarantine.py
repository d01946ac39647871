"""Quarantine: the one way a permanently bad event leaves the service.

It is kept with its reason (never with credentials) in the quarantine sink, recorded in the
trail, and acknowledged: redelivering it could not help.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from functions.logs import fields, label
from functions.service.ports import Services
from functions.service.records import NO_RIDERS, DecisionRecord, Handled, Outcome, Riders
from functions.service.results import quarantine_record

log = logging.getLogger("kfp_trigger")


def quarantine(
    services: Services,
    reason: str,
    attributes: Mapping[str, str],
    body: bytes,
    target: str,
    *,
    whole: tuple[int, str] | None = None,
    event_key: str = "",
    also: Riders = NO_RIDERS,
) -> Handled:
    """Keep a permanently bad event with its reason, record the decision, and acknowledge it.
    `whole`: the size and sha256 of a body too large to keep, of which `body` is the start;
    `event_key`: what the event is about, if it could be decoded; `also`: written with the
    decision."""
    now = services.clock()
    event_id = attributes.get("id", "")
    label(event_id=event_id)
    record = quarantine_record(reason, attributes, body, target=target, now=now, whole=whole)
    services.quarantine.publish(record)
    decision = DecisionRecord(
        at=now,
        event_id=event_id[:1024],
        event_key=event_key,
        event_type=attributes.get("type", "")[:200],
        outcome=Outcome.QUARANTINED,
        reason=reason,
    )
    services.decisions.write(also.deciding(decision))
    log.warning("event quarantined", extra=fields(target=target, reason=reason))
    return Handled((Outcome.QUARANTINED,), {"outcome": Outcome.QUARANTINED, "reason": reason})
