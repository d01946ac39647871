"""The SQLite `Ledger`: one file, safe across threads and processes on one machine.

Each write is one `BEGIN IMMEDIATE` transaction, so the read-decide-write of a claim is atomic
even between separate processes sharing the file (the embedded default's `dev` server and its
runners, or several functions-framework workers). WAL mode lets readers proceed meanwhile.
Threads of one process take turns at writing on a lock of their own first: SQLite's busy handler
makes a writer that finds the file locked sleep 1, 2, 5, 10… ms however soon the lock is free,
which was the serving tail under concurrent requests (issue 19); across processes it still
decides. Checkpoints (copying the WAL into the file, and its fsync) run on a thread of their own,
not inside a writer's commit, where they held every other writer for milliseconds.
SQLite errors become `TransientError`: the caller answers non-2xx and the platform retries.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from events.errors import TransientError
from functions.service.records import (
    NO_RIDERS,
    Claim,
    ClaimOutcome,
    DecisionRecord,
    JoinState,
    JoinStatus,
    KeptEvent,
    MarkRaise,
    NewRun,
    Outcome,
    Part,
    Reading,
    Riders,
    RunRecord,
    arrive_rule,
    claim_rule,
    others_folded,
    parts_from_json,
    parts_json,
    prefix_end,
)
from pipelines.backend import TERMINAL, RunState

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    route TEXT NOT NULL, pipeline TEXT NOT NULL, version TEXT NOT NULL, backend TEXT NOT NULL,
    params TEXT NOT NULL, event_id TEXT NOT NULL,
    state TEXT NOT NULL, attempt INTEGER NOT NULL, lease_until REAL NOT NULL, run_id TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, submitted_at REAL, finished_at REAL,
    details TEXT NOT NULL DEFAULT '{}', publish_lease REAL NOT NULL DEFAULT 0, published_at REAL,
    not_before REAL NOT NULL DEFAULT 0, concurrency TEXT NOT NULL DEFAULT '', trace TEXT NOT NULL DEFAULT ''
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
    status TEXT NOT NULL, parts TEXT NOT NULL, PRIMARY KEY (route, key, opened)
);
CREATE INDEX IF NOT EXISTS joins_by_status ON joins(status);
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
    ("marks", "at"): "REAL NOT NULL DEFAULT 0",
}

TERMINAL_STATES = tuple(sorted(state.value for state in TERMINAL))
_IN_TERMINAL = f"state IN ({','.join('?' * len(TERMINAL_STATES))})"


# A writer's commit checkpoints by itself only past this many WAL pages (SQLite's default is
# 1,000): the checkpointer below keeps the WAL shorter, and this is the net if it cannot.
WAL_SAFETY_PAGES = 10_000
CHECKPOINT_EVERY = 100  # commits by this process between the checkpointer's turns


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_SAFETY_PAGES}")
    return db


class _File:
    """What the threads of this process share about one ledger file (issue 19):

    - one connection that its writers take turns on, under a lock. SQLite drops a connection's
      whole page cache whenever another connection has written, so with a connection per thread
      every transaction started cold; the writers' own connection stays warm. Readers keep a
      connection per thread and never wait for a writer.
    - a checkpointer. A checkpoint inside a commit made that commit's writer, and every writer
      waiting for the lock, wait for the copy and its fsync: about a third of a new event's time
      in process. Here a daemon thread checkpoints (PASSIVE: beside writers and readers, never
      blocking them) after every CHECKPOINT_EVERY commits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writers = threading.RLock()
        self._writer: tuple[int, sqlite3.Connection] | None = None  # (the process that opened it, it)
        self.commits = 0
        self.due = threading.Event()
        self.checkpointer: threading.Thread | None = None

    def writer(self) -> sqlite3.Connection:
        """The writers' connection; call with `writers` held. A forked child opens its own."""
        if self._writer is None or self._writer[0] != os.getpid():
            self._writer = (os.getpid(), _open(self.path))
        return self._writer[1]

    def committed(self) -> None:
        """Called by a writer that holds `writers`, after its commit."""
        self.commits += 1
        if self.commits % CHECKPOINT_EVERY:
            return
        if self.checkpointer is None or not self.checkpointer.is_alive():  # not started, or forked
            self.checkpointer = threading.Thread(
                target=self._checkpoints, name="sqlite-checkpoint", daemon=True
            )
            self.checkpointer.start()
        self.due.set()

    def _checkpoints(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        while True:
            self.due.wait()
            self.due.clear()
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:  # the next turn tries again; past WAL_SAFETY_PAGES a commit does
                continue


_FILES: dict[Path, _File] = {}  # per ledger file, in this process
_FILES_LOCK = threading.Lock()


class SqliteLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with _FILES_LOCK:
            self._file = _FILES.setdefault(path.resolve(), _File(path.resolve()))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connection()
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
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, for reading."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _open(self.path)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._file.writers:
                db = self._file.writer()
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                self._file.committed()
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads in one read transaction: one snapshot of the file, one round trip."""
        try:
            db = self._connection()
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise TransientError(f"ledger unavailable: {exc}") from exc

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        run: NewRun,
        state: RunState,
        lease_until: float,
        now: float,
        not_before: float = 0.0,
    ) -> bool:
        """Insert the run unless its key is taken; whether it was inserted."""
        cursor = db.execute(
            "INSERT INTO runs (run_key, route, pipeline, version, backend, params, event_id,"
            " state, attempt, lease_until, created_at, updated_at, not_before, concurrency, trace)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_key) DO NOTHING",
            (
                run.run_key,
                run.route,
                run.pipeline,
                run.version,
                run.backend,
                json.dumps(run.params, sort_keys=True),
                run.event_id,
                state,
                lease_until,
                now,
                now,
                not_before,
                run.concurrency,
                run.trace,
            ),
        )
        return cursor.rowcount == 1

    def read(
        self, now: float, run_keys: Collection[str], marks: Collection[str] = (), flags: Collection[str] = ()
    ) -> Reading:
        def rows(db: sqlite3.Connection, sql: str, keys: Collection[str]) -> list[sqlite3.Row]:
            if not keys:
                return []
            return db.execute(sql.format(",".join("?" * len(keys))), tuple(keys)).fetchall()

        with self._snapshot() as db:
            found = rows(db, "SELECT * FROM runs WHERE run_key IN ({})", run_keys)
            raised = rows(db, "SELECT key, value FROM marks WHERE key IN ({})", marks)
            set_flags = rows(db, "SELECT name, value FROM flags WHERE name IN ({})", flags)
        return Reading(
            runs={row["run_key"]: _record(row) for row in found},
            marks={key: 0 for key in marks} | {row["key"]: int(row["value"]) for row in raised},
            flags={name: False for name in flags} | {row["name"]: bool(row["value"]) for row in set_flags},
            at=now,
        )

    def claim(self, run: NewRun, now: float, lease: float, also: Riders = NO_RIDERS) -> Claim:
        with self._write() as db:  # a new key is inserted in one statement, read only if taken
            if self._insert(db, run, RunState.CLAIMED, now + lease, now):
                claim = Claim(ClaimOutcome.WON, attempt=1)
            else:
                row = db.execute("SELECT * FROM runs WHERE run_key = ?", (run.run_key,)).fetchone()
                claim = self._take_over(db, _record(row), now, lease, RunState.CLAIMED)
            if claim.outcome is ClaimOutcome.WON:
                _ride(db, also)
            return claim

    @staticmethod
    def _take_over(
        db: sqlite3.Connection, record: RunRecord, now: float, lease: float, takes: RunState
    ) -> Claim:
        """Decide by `claim_rule`; on a takeover, claim the run again (attempt + 1)."""
        decided = claim_rule(record, now, takes)
        if decided is not None:
            return decided
        attempt = record.attempt + 1
        db.execute(
            "UPDATE runs SET state = ?, attempt = ?, lease_until = ?, updated_at = ? WHERE run_key = ?",
            (RunState.CLAIMED, attempt, now + lease, now, record.run_key),
        )
        return Claim(ClaimOutcome.WON, attempt, record)

    def mark_submitted(
        self,
        run_key: str,
        attempt: int,
        run_id: str,
        now: float,
        also: Riders = NO_RIDERS,
        version: object = None,
    ) -> bool:
        with self._write() as db:  # one transaction: no version needed to compare and set
            cursor = db.execute(
                "UPDATE runs SET state = ?, run_id = ?, submitted_at = ?, updated_at = ?"
                " WHERE run_key = ? AND state = ? AND attempt = ?",
                (RunState.SUBMITTED, run_id, now, now, run_key, RunState.CLAIMED, attempt),
            )
            _ride(db, also)
            return cursor.rowcount == 1

    def release(self, run_key: str, attempt: int) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET lease_until = 0 WHERE run_key = ? AND state = ? AND attempt = ?",
                (run_key, RunState.CLAIMED, attempt),
            )

    def finish(
        self,
        run_key: str,
        state: RunState,
        details: Mapping[str, object],
        now: float,
        only_from: RunState | None = None,
        decision: DecisionRecord | None = None,
        *,
        also: Riders = NO_RIDERS,
        publish_lease: float = 0.0,
    ) -> RunRecord | None:
        if not state.terminal:
            raise ValueError(f"{state} is not a terminal state")
        with self._write() as db:
            row = db.execute(
                f"UPDATE runs SET state = ?, details = ?, finished_at = ?, updated_at = ?, publish_lease = ?"
                f" WHERE run_key = ? AND NOT {_IN_TERMINAL} AND state = coalesce(?, state) RETURNING *",
                (
                    state,
                    json.dumps(details, sort_keys=True),
                    now,
                    now,
                    now + publish_lease if publish_lease > 0 else 0.0,
                    run_key,
                    *TERMINAL_STATES,
                    only_from,
                ),
            ).fetchone()
            if row is not None and decision is not None:
                _insert_decision(db, decision)
            _ride(db, also)
            return None if row is None else _record(row)

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE runs SET publish_lease = ? WHERE run_key = ? AND {_IN_TERMINAL}"
                " AND published_at IS NULL AND publish_lease <= ?",
                (now + lease, run_key, *TERMINAL_STATES, now),
            )
            if cursor.rowcount != 1:
                return None
            return _record(db.execute("SELECT * FROM runs WHERE run_key = ?", (run_key,)).fetchone())

    def mark_published(self, run_key: str, now: float, also: Riders = NO_RIDERS) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE runs SET published_at = ?, updated_at = ? WHERE run_key = ? AND published_at IS NULL",
                (now, now, run_key),
            )
            _ride(db, also)

    def get(self, run_key: str) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs WHERE run_key = ?", (run_key,))
        return _record(rows[0]) if rows else None

    def runs(
        self,
        *,
        route: str | None = None,
        state: RunState | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[RunRecord]:
        clauses, args = [], []
        for column, value in (("route", route), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(str(value))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        order = "DESC" if newest_first else "ASC"
        rows = self._read(f"SELECT * FROM runs {where} ORDER BY created_at {order} LIMIT ?", (*args, limit))
        return [_record(row) for row in rows]

    def unfinished(self) -> list[RunRecord]:
        rows = self._read("SELECT * FROM runs WHERE state = ? ORDER BY created_at", (RunState.SUBMITTED,))
        return [_record(row) for row in rows]

    def stale_claims(self, now: float) -> list[RunRecord]:
        rows = self._read(
            "SELECT * FROM runs WHERE state = ? AND lease_until <= ? ORDER BY created_at",
            (RunState.CLAIMED, now),
        )
        return [_record(row) for row in rows]

    def unpublished(self) -> list[RunRecord]:
        rows = self._read(
            f"SELECT * FROM runs WHERE {_IN_TERMINAL} AND published_at IS NULL ORDER BY finished_at",
            TERMINAL_STATES,
        )
        return [_record(row) for row in rows]

    def record(self, decision: DecisionRecord) -> None:
        self.write(Riders(decisions=(decision,)))

    def write(self, also: Riders) -> None:
        with self._write() as db:
            _ride(db, also)

    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET state = ?, details = ?, lease_until = 0, updated_at = ?"
                " WHERE run_key = ? AND state = ? AND attempt = ?",
                (RunState.QUEUED, json.dumps({"queued": reason}), now, run_key, RunState.CLAIMED, attempt),
            )
            return cursor.rowcount == 1

    def queued(self, now: float) -> list[RunRecord]:
        rows = self._read(
            "SELECT * FROM runs WHERE state = ? AND not_before <= ? ORDER BY created_at",
            (RunState.QUEUED, now),
        )
        return [_record(row) for row in rows]

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        with self._write() as db:
            row = db.execute("SELECT * FROM runs WHERE run_key = ?", (run_key,)).fetchone()
            if row is None:
                raise KeyError(run_key)
            return self._take_over(db, _record(row), now, lease, RunState.QUEUED)

    def join_batch(
        self, run: NewRun, not_before: float, member: str, identity: str, now: float
    ) -> tuple[str, bool] | None:
        with self._write() as db:
            held = db.execute(
                "SELECT run_key FROM batch_members WHERE route = ? AND identity = ?", (run.route, identity)
            ).fetchone()
            if held is not None:
                return str(held["run_key"]), False
            row = db.execute("SELECT state FROM runs WHERE run_key = ?", (run.run_key,)).fetchone()
            if row is None:
                self._insert(db, run, RunState.QUEUED, 0.0, now, not_before)
            elif row["state"] != RunState.QUEUED:
                return None
            db.execute(
                "INSERT INTO batch_members (route, identity, run_key, member, at) VALUES (?, ?, ?, ?, ?)",
                (run.route, identity, run.run_key, member, now),
            )
            return run.run_key, True

    def members(self, run_key: str) -> list[str]:
        rows = self._read(
            "SELECT DISTINCT member FROM batch_members WHERE run_key = ? ORDER BY member", (run_key,)
        )
        return [row["member"] for row in rows]

    def arrive(
        self,
        route: str,
        key: str,
        part: str,
        arrival: Part,
        names: tuple[str, ...],
        within: float,
        now: float,
    ) -> JoinState:
        with self._write() as db:
            rows = db.execute(
                "SELECT * FROM joins WHERE route = ? AND key = ? ORDER BY opened DESC", (route, key)
            ).fetchall()
            windows = [_window(row) for row in rows]
            window = arrive_rule(windows, route, key, part, arrival, names, within, now)
            if window.added:
                db.execute(
                    "INSERT INTO joins (route, key, opened, expires, status, parts) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (route, key, opened) DO UPDATE SET status = excluded.status,"
                    " parts = excluded.parts",
                    (
                        route,
                        key,
                        window.opened,
                        window.expires,
                        window.status,
                        json.dumps(parts_json(window.parts)),
                    ),
                )
            return window

    def joins(
        self, *, status: JoinStatus | None = None, route: str | None = None, key: str | None = None
    ) -> list[JoinState]:
        rows = self._read(
            "SELECT * FROM joins WHERE status = coalesce(?, status) AND route = coalesce(?, route)"
            " AND key = coalesce(?, key) ORDER BY opened DESC",
            (status, route, key),
        )
        return [_window(row) for row in rows]

    def expire(self, route: str, key: str, opened: float, closed_before: float) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "UPDATE joins SET status = ? WHERE route = ? AND key = ? AND opened = ? AND status = ?"
                " AND expires <= ?",
                (JoinStatus.EXPIRED, route, key, opened, JoinStatus.OPEN, closed_before),
            )
            return cursor.rowcount == 1

    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        with self._write() as db:
            if db.execute("SELECT 1 FROM places WHERE scope = ? AND holder = ?", (scope, holder)).fetchone():
                return True
            (held,) = db.execute("SELECT COUNT(*) FROM places WHERE scope = ?", (scope,)).fetchone()
            if held >= limit:
                return False
            db.execute("INSERT INTO places (scope, holder, at) VALUES (?, ?, ?)", (scope, holder, now))
            return True

    def let_go(self, scope: str, holder: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM places WHERE scope = ? AND holder = ?", (scope, holder))

    def flag(self, name: str) -> bool:
        rows = self._read("SELECT value FROM flags WHERE name = ?", (name,))
        return bool(rows and rows[0]["value"])

    def set_flag(self, name: str, on: bool) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO flags (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, int(on)),
            )

    def raise_mark(self, key: str, value: int, now: float) -> int:
        with self._write() as db:
            return _raise_mark(db, MarkRaise(key, value, now))

    def mark(self, key: str) -> int:
        rows = self._read("SELECT value FROM marks WHERE key = ?", (key,))
        return int(rows[0]["value"]) if rows else 0

    def holders(self, scope: str) -> list[str]:
        rows = self._read("SELECT holder FROM places WHERE scope = ? ORDER BY holder", (scope,))
        return [row["holder"] for row in rows]

    def trail(self, identifier: str) -> list[DecisionRecord]:
        rows = self._read(
            "SELECT * FROM decisions WHERE event_id = ? OR event_key = ? OR run_key = ? ORDER BY id",
            (identifier, identifier, identifier),
        )
        return [_decision(row) for row in rows]

    def prune(self, before: float) -> dict[str, int]:
        """Delete what is older than `before` and no longer needed: decisions, ended runs whose
        result is published (so their run key dedupes no longer), batch memberships of runs
        gone, rate and daily places, high-water marks not raised since, and join windows closed
        before it. Runs still going, unpublished results, `active:` and `key:` places and open
        join windows stay. How many rows of each went."""
        ended = f"{_IN_TERMINAL} AND published_at IS NOT NULL AND finished_at < ?"
        statements = {
            "decisions": ("DELETE FROM decisions WHERE at < ?", (before,)),
            "runs": (f"DELETE FROM runs WHERE {ended}", (*TERMINAL_STATES, before)),
            "batch_members": (
                "DELETE FROM batch_members WHERE at < ? AND run_key NOT IN (SELECT run_key FROM runs)",
                (before,),
            ),
            "places": (
                "DELETE FROM places WHERE at < ? AND scope NOT LIKE 'active:%' AND scope NOT LIKE 'key:%'",
                (before,),
            ),
            "marks": ("DELETE FROM marks WHERE at < ?", (before,)),
            "joins": ("DELETE FROM joins WHERE status != ? AND expires < ?", (JoinStatus.OPEN, before)),
            "events": ("DELETE FROM events WHERE at < ?", (before,)),
        }
        with self._write() as db:
            return {table: db.execute(sql, args).rowcount for table, (sql, args) in statements.items()}

    def summary(self, routes: Collection[str]) -> dict[tuple[str, RunState], int]:
        rows = self._read("SELECT route, state, COUNT(*) AS n FROM runs GROUP BY route, state")
        return others_folded({(row["route"], RunState(row["state"])): row["n"] for row in rows}, routes)

    def keep(self, event: KeptEvent) -> None:
        self.write(Riders(kept=event))

    def kept(self, event_id: str) -> KeptEvent | None:
        rows = self._read("SELECT * FROM events WHERE event_id = ?", (event_id,))
        return _kept(rows[0]) if rows else None

    def quarantined(self, since: float) -> list[KeptEvent]:
        rows = self._read("SELECT * FROM events WHERE at >= ? AND reason != '' ORDER BY at", (since,))
        return [_kept(row) for row in rows]

    def count_decisions(self, outcome: Outcome) -> int:
        # The outcome inline (an enum value), so that the partial index serves quarantined ones.
        (row,) = self._read(f"SELECT COUNT(*) AS n FROM decisions WHERE outcome = '{Outcome(outcome).value}'")
        return int(row["n"])

    def recent(
        self, since: float, *, before: float | None = None, route: str | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        clauses: list[str] = ["at >= ?"]
        values: list[object] = [since]
        for clause, value in (("at < ?", before), ("route = ?", route)):
            if value is not None:
                clauses.append(clause)
                values.append(value)
        rows = self._read(
            f"SELECT * FROM decisions WHERE {' AND '.join(clauses)} ORDER BY at DESC, id DESC LIMIT ?",
            (*values, limit),
        )
        return [_decision(row) for row in rows]

    def find(self, prefix: str, limit: int = 100) -> list[DecisionRecord]:
        end = prefix_end(prefix)
        rows = self._read(
            "SELECT * FROM decisions WHERE event_key >= ? AND event_key < ?"
            " UNION SELECT * FROM decisions WHERE run_key >= ? AND run_key < ?"
            " ORDER BY at DESC, id DESC LIMIT ?",
            (prefix, end, prefix, end, limit),
        )
        return [_decision(row) for row in rows]


def _ride(db: sqlite3.Connection, also: Riders) -> None:
    """Write riders in the transaction `db` is in."""
    if (event := also.kept) is not None:
        db.execute(
            "INSERT INTO events (event_id, at, attributes, data, reason) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO UPDATE SET at = excluded.at, attributes = excluded.attributes,"
            " data = excluded.data, reason = excluded.reason",
            (event.event_id, event.at, json.dumps(dict(event.attributes)), event.data, event.reason),
        )
    for mark in also.marks:
        _raise_mark(db, mark)
    for decision in also.decisions:
        _insert_decision(db, decision)


def _raise_mark(db: sqlite3.Connection, mark: MarkRaise) -> int:
    (value,) = db.execute(
        "INSERT INTO marks (key, value, at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET value = max(value, excluded.value), at = excluded.at RETURNING value",
        mark,
    ).fetchone()
    return int(value)


def _insert_decision(db: sqlite3.Connection, decision: DecisionRecord) -> None:
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


def _has_old_members(db: sqlite3.Connection) -> bool:
    return (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'members'").fetchone()
        is not None
    )


def _decision(row: sqlite3.Row) -> DecisionRecord:
    values = {key: row[key] for key in row.keys() if key != "id"}  # noqa: SIM118 - a Row iterates values
    return DecisionRecord(**(values | {"outcome": Outcome(row["outcome"])}))


def _record(row: sqlite3.Row) -> RunRecord:
    values = {key: row[key] for key in row.keys() if key != "publish_lease"}  # noqa: SIM118 - a Row iterates values
    decoded = {
        "params": json.loads(row["params"]),
        "details": json.loads(row["details"]),
        "state": RunState(row["state"]),
    }
    return RunRecord(**(values | decoded))


def _window(row: sqlite3.Row) -> JoinState:
    return JoinState(
        row["route"],
        row["key"],
        row["opened"],
        row["expires"],
        JoinStatus(row["status"]),
        parts_from_json(json.loads(row["parts"])),
    )


def _kept(row: sqlite3.Row) -> KeptEvent:
    return KeptEvent(row["event_id"], row["at"], json.loads(row["attributes"]), row["data"], row["reason"])
