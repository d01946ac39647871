"""Quarantine: the one way a permanently bad event leaves the service.

It is kept with its reason (never with credentials) in the quarantine sink, recorded in the
trail, and acknowledged: redelivering it could not help.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from functions.logs import fields, label
from functions.service.ports import Services
from functions.service.records import DecisionRecord, Handled, Outcome
from functions.service.results import quarantine_record

log = logging.getLogger("kfp_trigger")


def quarantine(
    services: Services, reason: str, attributes: Mapping[str, str], body: bytes, target: str
) -> Handled:
    """Keep a permanently bad event with its reason, record the decision, and acknowledge it."""
    now = services.clock()
    event_id = attributes.get("id", attributes.get("ce-id", ""))
    label(event_id=event_id)
    services.quarantine.publish(quarantine_record(reason, attributes, body, target=target, now=now))
    services.decisions.record(
        DecisionRecord(
            at=now,
            event_id=event_id[:1024],
            event_key="",
            event_type=attributes.get("type", attributes.get("ce-type", ""))[:200],
            outcome=Outcome.QUARANTINED,
            reason=reason,
        )
    )
    log.warning("event quarantined", extra=fields(target=target, reason=reason))
    return Handled((Outcome.QUARANTINED,), {"outcome": Outcome.QUARANTINED, "reason": reason})
