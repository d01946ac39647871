"""The SQLite join windows: the parts that arrived per route and correlation key (`arrive_rule`)."""

from __future__ import annotations

import json
import sqlite3

from functions.adapters.sqlite.database import Part
from functions.service.records import JoinState, JoinStatus, arrive_rule, parts_from_json, parts_json
from functions.service.records import Part as Arrival


class SqliteJoins(Part):
    def arrive(
        self,
        route: str,
        key: str,
        part: str,
        arrival: Arrival,
        names: tuple[str, ...],
        within: float,
        now: float,
    ) -> JoinState:
        with self._db.write() as db:
            rows = db.execute(
                "SELECT * FROM joins WHERE route = ? AND key = ? ORDER BY opened DESC", (route, key)
            ).fetchall()
            windows = [window(row) for row in rows]
            opened = arrive_rule(windows, route, key, part, arrival, names, within, now)
            if opened.added:
                db.execute(
                    "INSERT INTO joins (route, key, opened, expires, status, parts) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (route, key, opened) DO UPDATE SET status = excluded.status,"
                    " parts = excluded.parts",
                    (
                        route,
                        key,
                        opened.opened,
                        opened.expires,
                        opened.status,
                        json.dumps(parts_json(opened.parts)),
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
    return JoinState(
        row["route"],
        row["key"],
        row["opened"],
        row["expires"],
        JoinStatus(row["status"]),
        parts_from_json(json.loads(row["parts"])),
    )
