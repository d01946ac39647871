"""The SQLite join windows: each window a row with its arrivals in order (`windows.arrive_rule`)."""

from __future__ import annotations

import json
import sqlite3

from functions.adapters.sqlite.database import Part
from functions.service.windows import (
    JoinState,
    JoinStatus,
    Terms,
    arrivals_from_json,
    arrivals_json,
    arrive_rule,
    first_arrivals,
    parts_from_json,
    parts_json,
)
from functions.service.windows import Part as Arrival


class SqliteJoins(Part):
    def arrive(
        self, route: str, key: str, part: str, arrival: Arrival, terms: Terms, now: float
    ) -> JoinState:
        with self._db.write() as db:
            rows = db.execute(
                "SELECT * FROM joins WHERE route = ? AND key = ? ORDER BY opened DESC", (route, key)
            ).fetchall()
            opened = arrive_rule([window(row) for row in rows], route, key, part, arrival, terms, now)
            if opened.added:
                db.execute(
                    "INSERT INTO joins (route, key, opened, expires, status, parts, late, arrivals)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (route, key, opened) DO UPDATE SET"
                    " status = excluded.status, parts = excluded.parts, late = excluded.late,"
                    " arrivals = excluded.arrivals",
                    (
                        route,
                        key,
                        opened.opened,
                        opened.expires,
                        opened.status,
                        json.dumps(parts_json(opened.parts)),
                        json.dumps(arrivals_json(opened.late)),
                        json.dumps(arrivals_json(opened.arrivals)),
                    ),
                )
            return opened

    def joins(
        self, *, status: JoinStatus | None = None, route: str | None = None, key: str | None = None
    ) -> list[JoinState]:
        rows = self._db.read(
            "SELECT * FROM joins WHERE status = coalesce(?, status) AND route = coalesce(?, route)"
            " AND key = coalesce(?, key) ORDER BY opened DESC",
            (status, route, key),
        )
        return [window(row) for row in rows]

    def expire(self, route: str, key: str, opened: float, closed_before: float) -> bool:
        with self._db.write() as db:
            cursor = db.execute(
                "UPDATE joins SET status = ? WHERE route = ? AND key = ? AND opened = ? AND status = ?"
                " AND expires <= ?",
                (JoinStatus.EXPIRED, route, key, opened, JoinStatus.OPEN, closed_before),
            )
            return cursor.rowcount == 1


def window(row: sqlite3.Row) -> JoinState:
    parts = parts_from_json(json.loads(row["parts"]))
    arrivals = arrivals_from_json(json.loads(row["arrivals"])) or first_arrivals(parts)  # older rows
    return JoinState(
        row["route"],
        row["key"],
        row["opened"],
        row["expires"],
        JoinStatus(row["status"]),
        parts,
        arrivals_from_json(json.loads(row["late"])),
        arrivals,
    )
