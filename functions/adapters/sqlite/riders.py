"""Writes that ride on another part's commit (`records.Riders`): the kept event, high-water
marks and decisions, each written in the transaction it is given."""

from __future__ import annotations

import json
import sqlite3

from functions.service.records import DecisionRecord, KeptEvent, MarkRaise, Riders


def ride(db: sqlite3.Connection, also: Riders) -> None:
    """Write riders in the transaction `db` is in."""
    if (event := also.kept) is not None:
        keep_event(db, event)
    for mark in also.marks:
        raise_mark(db, mark)
    for decision in also.decisions:
        insert_decision(db, decision)


def keep_event(db: sqlite3.Connection, event: KeptEvent) -> None:
    """Keep an event to replay it; the latest keep of an event id wins."""
    db.execute(
        "INSERT INTO events (event_id, at, attributes, data, reason) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (event_id) DO UPDATE SET at = excluded.at, attributes = excluded.attributes,"
        " data = excluded.data, reason = excluded.reason",
        (event.event_id, event.at, json.dumps(dict(event.attributes)), event.data, event.reason),
    )


def raise_mark(db: sqlite3.Connection, mark: MarkRaise) -> int:
    """Raise a high-water mark to at least its value; the mark after."""
    (value,) = db.execute(
        "INSERT INTO marks (key, value, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = max(value, excluded.value), at = excluded.at RETURNING value",
        mark,
    ).fetchone()
    return int(value)


def insert_decision(db: sqlite3.Connection, decision: DecisionRecord) -> None:
    db.execute(
        "INSERT INTO decisions (at, event_id, event_key, event_type, outcome, route, reason, run_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            decision.at,
            decision.event_id,
            decision.event_key,
            decision.event_type,
            decision.outcome,
            decision.route,
            decision.reason,
            decision.run_key,
        ),
    )
