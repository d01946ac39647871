"""The SQLite run queue: runs held back (QUEUED), taken to start, and coalescing batches' members."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import astuple, replace

from functions.adapters.sqlite.database import Part
from functions.adapters.sqlite.runs import insert_run, record, take_over
from functions.service.records import Claim, NewRun, RunRecord, SettleHead, SettleWindow, settle_rule
from pipelines.backend import RunState


class SqliteRunQueue(Part):
    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        with self._db.write() as db:
            cursor = db.execute(
                "UPDATE runs SET state = ?, details = ?, lease_until = 0, updated_at = ?"
                " WHERE run_key = ? AND state = ? AND attempt = ?",
                (RunState.QUEUED, json.dumps({"queued": reason}), now, run_key, RunState.CLAIMED, attempt),
            )
            return cursor.rowcount == 1

    def queued(self, now: float) -> list[RunRecord]:
        rows = self._db.read(
            "SELECT * FROM runs WHERE state = ? AND not_before <= ? ORDER BY created_at",
            (RunState.QUEUED, now),
        )
        return [record(row) for row in rows]

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        with self._db.write() as db:
            row = db.execute("SELECT * FROM runs WHERE run_key = ?", (run_key,)).fetchone()
            if row is None:
                raise KeyError(run_key)
            return take_over(db, record(row), now, lease, RunState.QUEUED)

    def join_batch(
        self, run: NewRun, not_before: float, member: str, identity: str, now: float
    ) -> tuple[str, bool] | None:
        with self._db.write() as db:
            held = db.execute(
                "SELECT run_key FROM batch_members WHERE route = ? AND identity = ?", (run.route, identity)
            ).fetchone()
            if held is not None:
                return str(held["run_key"]), False
            row = db.execute("SELECT state FROM runs WHERE run_key = ?", (run.run_key,)).fetchone()
            if row is None:
                insert_run(db, run, RunState.QUEUED, 0.0, now, not_before)
            elif row["state"] != RunState.QUEUED:
                return None
            db.execute(
                "INSERT INTO batch_members (route, identity, run_key, member, at) VALUES (?, ?, ?, ?, ?)",
                (run.route, identity, run.run_key, member, now),
            )
            return run.run_key, True

    def settle(
        self, run: NewRun, window: SettleWindow, member: str, identity: str, now: float
    ) -> SettleHead | str:
        with self._db.write() as db:
            held = db.execute(
                "SELECT run_key FROM batch_members WHERE route = ? AND identity = ?", (run.route, identity)
            ).fetchone()
            if held is not None:
                return str(held["run_key"])
            head = _head(db, run.route, run.run_key)
            state = db.execute(
                "SELECT state FROM runs WHERE run_key = ?", (head.run_key if head else "",)
            ).fetchone()
            joined = settle_rule(head, RunState(state["state"]) if state else None, run.run_key, window, now)
            if head is None or joined.number != head.number:
                insert_run(db, replace(run, run_key=joined.run_key), RunState.QUEUED, 0.0, now, joined.due)
            db.execute(
                "UPDATE runs SET not_before = ?, details = ?, updated_at = ? WHERE run_key = ?",
                (joined.due, json.dumps({"queued": joined.story()}), now, joined.run_key),
            )
            db.execute(
                "INSERT OR REPLACE INTO settles (route, key, number, run_key, opened, items, due)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run.route, run.run_key, *astuple(joined)),
            )
            db.execute(
                "INSERT INTO batch_members (route, identity, run_key, member, at) VALUES (?, ?, ?, ?, ?)",
                (run.route, identity, joined.run_key, member, now),
            )
            return joined

    def settling(self, route: str, key: str) -> SettleHead | None:
        with self._db.snapshot() as db:
            return _head(db, route, key)

    def add_members(self, run: NewRun, members: Sequence[str], now: float) -> None:
        rows = [(run.route, f"{run.run_key}\n{member}", run.run_key, member, now) for member in members]
        with self._db.write() as db:  # one transaction, whatever the count: SQLite has no cap
            db.executemany(
                "INSERT INTO batch_members (route, identity, run_key, member, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (route, identity) DO NOTHING",
                rows,
            )

    def members(self, run_key: str) -> list[str]:
        rows = self._db.read(
            "SELECT DISTINCT member FROM batch_members WHERE run_key = ? ORDER BY member", (run_key,)
        )
        return [row["member"] for row in rows]


def _head(db: sqlite3.Connection, route: str, key: str) -> SettleHead | None:
    row = db.execute(
        "SELECT number, run_key, opened, items, due FROM settles WHERE route = ? AND key = ?", (route, key)
    ).fetchone()
    return SettleHead(**dict(row)) if row is not None else None
