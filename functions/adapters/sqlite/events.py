"""The SQLite kept events: what replay sends through the intake again (the quarantined among them)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from functions.adapters.sqlite.database import Part
from functions.adapters.sqlite.riders import keep_event
from functions.service.records import KeptEvent

PAGE = 1000  # kept events read at a time


class SqliteKeptEvents(Part):
    def keep(self, event: KeptEvent) -> None:
        with self._db.write() as db:
            keep_event(db, event)

    def kept(self, event_id: str) -> KeptEvent | None:
        rows = self._db.read("SELECT * FROM events WHERE event_id = ?", (event_id,))
        return kept(rows[0]) if rows else None

    def kept_since(self, since: float) -> Iterator[KeptEvent]:
        last: tuple[float, str] = (since, "")
        while True:
            rows = self._db.read(
                "SELECT * FROM events WHERE at >= ? AND (at, event_id) > (?, ?)"
                " ORDER BY at, event_id LIMIT ?",
                (since, *last, PAGE),
            )
            yield from (kept(row) for row in rows)
            if len(rows) < PAGE:
                return
            last = (rows[-1]["at"], rows[-1]["event_id"])

    def quarantined(self, since: float) -> list[KeptEvent]:
        rows = self._db.read("SELECT * FROM events WHERE at >= ? AND reason != '' ORDER BY at", (since,))
        return [kept(row) for row in rows]

    def count_quarantined(self) -> int:
        (row,) = self._db.read("SELECT COUNT(*) AS n FROM events WHERE reason != ''")
        return int(row["n"])


def kept(row: sqlite3.Row) -> KeptEvent:
    return KeptEvent(row["event_id"], row["at"], json.loads(row["attributes"]), row["data"], row["reason"])
