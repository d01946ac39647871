"""The SQLite ledger's tables, and how a ledger file from an earlier release is brought up to them."""

from __future__ import annotations

import sqlite3

from pipelines.backend import TERMINAL

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    route TEXT NOT NULL, pipeline TEXT NOT NULL, version TEXT NOT NULL, backend TEXT NOT NULL,
    params TEXT NOT NULL, event_id TEXT NOT NULL,
    state TEXT NOT NULL, attempt INTEGER NOT NULL, lease_until REAL NOT NULL, run_id TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, submitted_at REAL, finished_at REAL,
    details TEXT NOT NULL DEFAULT '{}', publish_lease REAL NOT NULL DEFAULT 0, published_at REAL,
    not_before REAL NOT NULL DEFAULT 0, concurrency TEXT NOT NULL DEFAULT '', trace TEXT NOT NULL DEFAULT '',
    partition TEXT NOT NULL DEFAULT '', fresh_key TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS runs_by_route_state ON runs(route, state);
CREATE INDEX IF NOT EXISTS runs_by_state_time ON runs(state, created_at);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL, event_id TEXT NOT NULL, event_key TEXT NOT NULL, event_type TEXT NOT NULL,
    outcome TEXT NOT NULL, route TEXT NOT NULL, reason TEXT NOT NULL, run_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_by_event ON decisions(event_id);
CREATE INDEX IF NOT EXISTS decisions_by_key ON decisions(event_key);
CREATE INDEX IF NOT EXISTS decisions_by_run ON decisions(run_key);
CREATE TABLE IF NOT EXISTS batch_members (
    route TEXT NOT NULL, identity TEXT NOT NULL, run_key TEXT NOT NULL, member TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (route, identity)
);
CREATE INDEX IF NOT EXISTS batch_members_by_run ON batch_members(run_key);
CREATE TABLE IF NOT EXISTS places (
    scope TEXT NOT NULL, holder TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (scope, holder)
);
CREATE TABLE IF NOT EXISTS flags (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS marks (key TEXT PRIMARY KEY, value INTEGER NOT NULL, at REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions(at);
CREATE INDEX IF NOT EXISTS decisions_quarantined ON decisions(outcome) WHERE outcome = 'quarantined';
CREATE INDEX IF NOT EXISTS decisions_by_route_time ON decisions(route, at);
CREATE TABLE IF NOT EXISTS joins (
    route TEXT NOT NULL, key TEXT NOT NULL, opened REAL NOT NULL, expires REAL NOT NULL,
    status TEXT NOT NULL, parts TEXT NOT NULL, late TEXT NOT NULL DEFAULT '[]',
    arrivals TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (route, key, opened)
);
CREATE INDEX IF NOT EXISTS joins_by_status ON joins(status);
CREATE TABLE IF NOT EXISTS settles (
    route TEXT NOT NULL, key TEXT NOT NULL, number INTEGER NOT NULL, run_key TEXT NOT NULL,
    opened REAL NOT NULL, items INTEGER NOT NULL, due REAL NOT NULL, PRIMARY KEY (route, key)
);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, at REAL NOT NULL, attributes TEXT NOT NULL, data TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_time ON events(at);
"""
# Indexes that cost every write a page and that others serve now: (state) and (route) are the
# prefixes of (state, created_at) and (route, state); only quarantined decisions are counted by
# outcome (a partial index, which other decisions never touch).
DROPPED_INDEXES = ("runs_by_state", "runs_by_route", "decisions_by_outcome")
# Ledgers from before batch membership was per route and object generation kept a batch's
# objects in `members` (run key, member): moved once, each object its own identity.
MOVE_MEMBERS = (
    "INSERT OR IGNORE INTO batch_members (route, identity, run_key, member, at)"
    " SELECT runs.route, members.member, members.run_key, members.member, runs.created_at"
    " FROM members JOIN runs ON runs.run_key = members.run_key"
)
# Columns added after the first release, for ledgers created before them.
ADDED_COLUMNS = {
    ("runs", "not_before"): "REAL NOT NULL DEFAULT 0",
    ("runs", "concurrency"): "TEXT NOT NULL DEFAULT ''",
    ("runs", "trace"): "TEXT NOT NULL DEFAULT ''",
    ("runs", "partition"): "TEXT NOT NULL DEFAULT ''",
    ("runs", "fresh_key"): "TEXT NOT NULL DEFAULT ''",
    ("marks", "at"): "REAL NOT NULL DEFAULT 0",
    ("joins", "late"): "TEXT NOT NULL DEFAULT '[]'",
    ("joins", "arrivals"): "TEXT NOT NULL DEFAULT '[]'",
}

TERMINAL_STATES = tuple(sorted(state.value for state in TERMINAL))
IN_TERMINAL = f"state IN ({','.join('?' * len(TERMINAL_STATES))})"


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file `db` is connected to up to SCHEMA (idempotent; safe while another process
    opens the same file)."""
    for (table, column), declaration in ADDED_COLUMNS.items():
        present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    db.executescript(SCHEMA)  # idempotent; commits by itself
    for index in DROPPED_INDEXES:
        db.execute(f"DROP INDEX IF EXISTS {index}")
    if _has_old_members(db):
        db.execute("BEGIN IMMEDIATE")  # another process may be opening it too: one moves them
        if _has_old_members(db):
            db.execute(MOVE_MEMBERS)
            db.execute("DROP TABLE members")
        db.execute("COMMIT")


def _has_old_members(db: sqlite3.Connection) -> bool:
    return (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'members'").fetchone()
        is not None
    )
