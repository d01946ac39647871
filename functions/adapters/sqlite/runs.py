"""The SQLite `RunStore`: runs by run key, every move a compare-and-set inside one transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping

from functions.adapters.sqlite.database import Part
from functions.adapters.sqlite.riders import insert_decision, ride
from functions.adapters.sqlite.schema import IN_TERMINAL, TERMINAL_STATES
from functions.service.records import (
    NO_RIDERS,
    Claim,
    ClaimOutcome,
    DecisionRecord,
    NewRun,
    Reading,
    Riders,
    RunRecord,
    claim_rule,
    others_folded,
)
from pipelines.backend import RunState


class SqliteRunStore(Part):
    def read(
        self, now: float, run_keys: Collection[str], marks: Collection[str] = (), flags: Collection[str] = ()
    ) -> Reading:
        def rows(db: sqlite3.Connection, sql: str, keys: Collection[str]) -> list[sqlite3.Row]:
            if not keys:
                return []
            return db.execute(sql.format(",".join("?" * len(keys))), tuple(keys)).fetchall()

        with self._db.snapshot() as db:
            found = rows(db, "SELECT * FROM runs WHERE run_key IN ({})", run_keys)
            raised = rows(db, "SELECT key, value FROM marks WHERE key IN ({})", marks)
            set_flags = rows(db, "SELECT name, value FROM flags WHERE name IN ({})", flags)
        return Reading(
            runs={row["run_key"]: record(row) for row in found},
            marks={key: 0 for key in marks} | {row["key"]: int(row["value"]) for row in raised},
            flags={name: False for name in flags} | {row["name"]: bool(row["value"]) for row in set_flags},
            at=now,
        )

    def claim(self, run: NewRun, now: float, lease: float, also: Riders = NO_RIDERS) -> Claim:
        with self._db.write() as db:  # a new key is inserted in one statement, read only if taken
            if insert_run(db, run, RunState.CLAIMED, now + lease, now):
                claim = Claim(ClaimOutcome.WON, attempt=1)
            else:
                row = db.execute("SELECT * FROM runs WHERE run_key = ?", (run.run_key,)).fetchone()
                claim = take_over(db, record(row), now, lease, RunState.CLAIMED)
            if claim.outcome is ClaimOutcome.WON:
                ride(db, also)
            return claim

    def mark_submitted(
        self,
        run_key: str,
        attempt: int,
        run_id: str,
        now: float,
        also: Riders = NO_RIDERS,
        version: object = None,
    ) -> bool:
        with self._db.write() as db:  # one transaction: no version needed to compare and set
            cursor = db.execute(
                "UPDATE runs SET state = ?, run_id = ?, submitted_at = ?, updated_at = ?"
                " WHERE run_key = ? AND state = ? AND attempt = ?",
                (RunState.SUBMITTED, run_id, now, now, run_key, RunState.CLAIMED, attempt),
            )
            ride(db, also)
            return cursor.rowcount == 1

    def release(self, run_key: str, attempt: int) -> None:
        with self._db.write() as db:
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
        with self._db.write() as db:
            row = db.execute(
                f"UPDATE runs SET state = ?, details = ?, finished_at = ?, updated_at = ?, publish_lease = ?"
                f" WHERE run_key = ? AND NOT {IN_TERMINAL} AND state = coalesce(?, state) RETURNING *",
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
                insert_decision(db, decision)
            ride(db, also)
            return None if row is None else record(row)

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        with self._db.write() as db:
            cursor = db.execute(
                f"UPDATE runs SET publish_lease = ? WHERE run_key = ? AND {IN_TERMINAL}"
                " AND published_at IS NULL AND publish_lease <= ?",
                (now + lease, run_key, *TERMINAL_STATES, now),
            )
            if cursor.rowcount != 1:
                return None
            return record(db.execute("SELECT * FROM runs WHERE run_key = ?", (run_key,)).fetchone())

    def mark_published(self, run_key: str, now: float, also: Riders = NO_RIDERS) -> None:
        with self._db.write() as db:
            db.execute(
                "UPDATE runs SET published_at = ?, updated_at = ? WHERE run_key = ? AND published_at IS NULL",
                (now, now, run_key),
            )
            ride(db, also)

    def get(self, run_key: str) -> RunRecord | None:
        rows = self._db.read("SELECT * FROM runs WHERE run_key = ?", (run_key,))
        return record(rows[0]) if rows else None

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
        rows = self._db.read(
            f"SELECT * FROM runs {where} ORDER BY created_at {order} LIMIT ?", (*args, limit)
        )
        return [record(row) for row in rows]

    def unfinished(self) -> list[RunRecord]:
        rows = self._db.read("SELECT * FROM runs WHERE state = ? ORDER BY created_at", (RunState.SUBMITTED,))
        return [record(row) for row in rows]

    def stale_claims(self, now: float) -> list[RunRecord]:
        rows = self._db.read(
            "SELECT * FROM runs WHERE state = ? AND lease_until <= ? ORDER BY created_at",
            (RunState.CLAIMED, now),
        )
        return [record(row) for row in rows]

    def unpublished(self) -> list[RunRecord]:
        rows = self._db.read(
            f"SELECT * FROM runs WHERE {IN_TERMINAL} AND published_at IS NULL ORDER BY finished_at",
            TERMINAL_STATES,
        )
        return [record(row) for row in rows]

    def summary(self, routes: Collection[str]) -> dict[tuple[str, RunState], int]:
        rows = self._db.read("SELECT route, state, COUNT(*) AS n FROM runs GROUP BY route, state")
        return others_folded({(row["route"], RunState(row["state"])): row["n"] for row in rows}, routes)


def insert_run(
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
        " state, attempt, lease_until, created_at, updated_at, not_before, concurrency, trace, partition,"
        " fresh_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_key) DO NOTHING",
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
            run.partition,
            run.fresh_key,
        ),
    )
    return cursor.rowcount == 1


def take_over(db: sqlite3.Connection, run: RunRecord, now: float, lease: float, takes: RunState) -> Claim:
    """Decide by `claim_rule`; on a takeover, claim the run again (attempt + 1)."""
    decided = claim_rule(run, now, takes)
    if decided is not None:
        return decided
    attempt = run.attempt + 1
    db.execute(
        "UPDATE runs SET state = ?, attempt = ?, lease_until = ?, updated_at = ? WHERE run_key = ?",
        (RunState.CLAIMED, attempt, now + lease, now, run.run_key),
    )
    return Claim(ClaimOutcome.WON, attempt, run)


def record(row: sqlite3.Row) -> RunRecord:
    """A `runs` row as the record the services see."""
    values = {key: row[key] for key in row.keys() if key != "publish_lease"}  # noqa: SIM118 - a Row iterates values
    decoded = {
        "params": json.loads(row["params"]),
        "details": json.loads(row["details"]),
        "state": RunState(row["state"]),
    }
    return RunRecord(**(values | decoded))
