"""The SQLite `Quotas`: limit places, switches (flags) and high-water marks."""

from __future__ import annotations

from functions.adapters.sqlite.database import Part
from functions.adapters.sqlite.riders import raise_mark
from functions.service.records import MarkRaise


class SqliteQuotas(Part):
    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        with self._db.write() as db:
            if db.execute("SELECT 1 FROM places WHERE scope = ? AND holder = ?", (scope, holder)).fetchone():
                return True
            (held,) = db.execute("SELECT COUNT(*) FROM places WHERE scope = ?", (scope,)).fetchone()
            if held >= limit:
                return False
            db.execute("INSERT INTO places (scope, holder, at) VALUES (?, ?, ?)", (scope, holder, now))
            return True

    def let_go(self, scope: str, holder: str) -> None:
        with self._db.write() as db:
            db.execute("DELETE FROM places WHERE scope = ? AND holder = ?", (scope, holder))

    def holders(self, scope: str) -> list[str]:
        rows = self._db.read("SELECT holder FROM places WHERE scope = ? ORDER BY holder", (scope,))
        return [row["holder"] for row in rows]

    def flag(self, name: str) -> bool:
        rows = self._db.read("SELECT value FROM flags WHERE name = ?", (name,))
        return bool(rows and rows[0]["value"])

    def set_flag(self, name: str, on: bool) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT INTO flags (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, int(on)),
            )

    def raise_mark(self, key: str, value: int, now: float) -> int:
        with self._db.write() as db:
            return raise_mark(db, MarkRaise(key, value, now))

    def mark(self, key: str) -> int:
        rows = self._db.read("SELECT value FROM marks WHERE key = ?", (key,))
        return int(rows[0]["value"]) if rows else 0
