"""Writes that ride on another part's commit (`records.Riders`): the kept event, high-water
marks and decisions, added to the batch or transaction they are given."""

from __future__ import annotations

from typing import Any

from functions.adapters.firestore.database import Database, document_id
from functions.service.records import DecisionRecord, KeptEvent, Riders


def ride(db: Database, writes: Any, also: Riders) -> None:
    """Add riders to a batch or a transaction (`writes`)."""
    if (event := also.kept) is not None:
        writes.set(db.events.document(document_id(event.event_id)), event_document(event) | db.expiry())
    for key, value, _ in also.marks:
        maximum = {"key": key, "value": db.firestore.Maximum(value)}  # an atomic max
        writes.set(db.marks.document(document_id(key)), maximum | db.expiry(), merge=True)
    for decision in also.decisions:
        writes.create(db.decisions.document(), decision_document(db, decision))


def event_document(event: KeptEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "at": event.at,
        "attributes": dict(event.attributes),
        "data": event.data,
        "reason": event.reason,
        "quarantined": bool(event.reason),
    }


def decision_document(db: Database, decision: DecisionRecord) -> dict[str, Any]:
    return {
        "at": decision.at,
        "event_id": decision.event_id,
        "event_key": decision.event_key,
        "event_type": decision.event_type,
        "outcome": decision.outcome.value,
        "route": decision.route,
        "reason": decision.reason,
        "run_key": decision.run_key,
        "written": db.firestore.SERVER_TIMESTAMP,
        **db.expiry(),
    }
