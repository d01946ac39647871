"""The SQLite `DecisionLog`'s trail: event → decision → run, as `kfp-trigger explain` reads it."""

from __future__ import annotations

import sqlite3

from functions.adapters.sqlite.database import Part
from functions.adapters.sqlite.riders import ride
from functions.service.records import DecisionRecord, Outcome, Riders, prefix_end


class SqliteDecisions(Part):
    def record(self, decision: DecisionRecord) -> None:
        self.write(Riders(decisions=(decision,)))

    def write(self, also: Riders) -> None:
        with self._db.write() as db:
            ride(db, also)

    def trail(self, identifier: str) -> list[DecisionRecord]:
        rows = self._db.read(
            "SELECT * FROM decisions WHERE event_id = ? OR event_key = ? OR run_key = ? ORDER BY id",
            (identifier, identifier, identifier),
        )
        return [decision(row) for row in rows]

    def count_decisions(self, outcome: Outcome) -> int:
        # The outcome inline (an enum value), so that the partial index serves quarantined ones.
        sql = f"SELECT COUNT(*) AS n FROM decisions WHERE outcome = '{Outcome(outcome).value}'"
        (row,) = self._db.read(sql)
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
        rows = self._db.read(
            f"SELECT * FROM decisions WHERE {' AND '.join(clauses)} ORDER BY at DESC, id DESC LIMIT ?",
            (*values, limit),
        )
        return [decision(row) for row in rows]

    def find(self, prefix: str, limit: int = 100) -> list[DecisionRecord]:
        end = prefix_end(prefix)
        rows = self._db.read(
            "SELECT * FROM decisions WHERE event_key >= ? AND event_key < ?"
            " UNION SELECT * FROM decisions WHERE run_key >= ? AND run_key < ?"
            " ORDER BY at DESC, id DESC LIMIT ?",
            (prefix, end, prefix, end, limit),
        )
        return [decision(row) for row in rows]


def decision(row: sqlite3.Row) -> DecisionRecord:
    values = {key: row[key] for key in row.keys() if key != "id"}  # noqa: SIM118 - a Row iterates values
    return DecisionRecord(**(values | {"outcome": Outcome(row["outcome"])}))
