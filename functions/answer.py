"""How a target answers: the `Answer` type, the status per outcome, and quarantine.

Quarantine is the one way a permanently bad event leaves the service: it is kept with its
reason (never with credentials), recorded in the trail, and acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.ledger import DecisionRecord, Outcome
from functions.logs import fields, label
from functions.results import quarantine_record

if TYPE_CHECKING:
    from functions.bootstrap import Services

log = logging.getLogger("kfp_trigger")

# How each outcome is answered; the most severe one in a response wins.
STATUS: Mapping[Outcome, int] = {
    Outcome.RUN: 200,
    Outcome.DUPLICATE: 200,
    Outcome.SKIPPED: 200,
    Outcome.IGNORED: 200,
    Outcome.QUARANTINED: 200,
    Outcome.FAILED: 200,
    Outcome.COMPLETED: 200,
    Outcome.QUEUED: 200,
    Outcome.BUSY: 429,
    Outcome.RETRY: 503,
}


@dataclass(frozen=True, slots=True)
class Answer:
    """What the HTTP target answers: a status and a small JSON body (never the payload)."""

    status: int
    body: Mapping[str, object]


def quarantine(
    services: Services, reason: str, attributes: Mapping[str, str], body: bytes, target: str
) -> Answer:
    """Keep a permanently bad event with its reason, record the decision, and acknowledge it."""
    now = services.clock()
    label(event_id=attributes.get("id", attributes.get("ce-id", "")))
    services.quarantine.publish(quarantine_record(reason, attributes, body, target=target, now=now))
    services.ledger.record(
        DecisionRecord(
            at=now,
            event_id=attributes.get("id", attributes.get("ce-id", ""))[:1024],
            event_key="",
            event_type=attributes.get("type", attributes.get("ce-type", ""))[:200],
            outcome=Outcome.QUARANTINED,
            reason=reason,
        )
    )
    log.warning("event quarantined", extra=fields(target=target, reason=reason))
    return Answer(200, {"outcome": Outcome.QUARANTINED, "reason": reason})
