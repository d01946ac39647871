"""`SqliteLedger`: every ledger port on one SQLite file, and its pruning (`kfp-trigger prune`)."""

from __future__ import annotations

from pathlib import Path

from functions.adapters.sqlite.database import Database
from functions.adapters.sqlite.decisions import SqliteDecisions
from functions.adapters.sqlite.events import SqliteKeptEvents
from functions.adapters.sqlite.joins import SqliteJoins
from functions.adapters.sqlite.queue import SqliteRunQueue
from functions.adapters.sqlite.quotas import SqliteQuotas
from functions.adapters.sqlite.runs import SqliteRunStore
from functions.adapters.sqlite.schema import IN_TERMINAL, TERMINAL_STATES
from functions.service.windows import JoinStatus


class SqliteLedger(
    SqliteRunStore, SqliteRunQueue, SqliteJoins, SqliteDecisions, SqliteKeptEvents, SqliteQuotas
):
    """The parts, each a port (or its share of one), on one `Database`: a claim and the records
    that ride on it share a commit."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        super().__init__(Database(path, read_only))
        self.path = path

    def prune(self, before: float) -> dict[str, int]:
        """Delete what is older than `before` and no longer needed: decisions, ended runs whose
        result is published (so their run key dedupes no longer), batch memberships of runs
        gone, rate and daily places, high-water marks not raised since, and join windows closed
        before it. Runs still going, unpublished results, `active:` and `key:` places and open
        join windows stay. How many rows of each went."""
        ended = f"{IN_TERMINAL} AND published_at IS NOT NULL AND finished_at < ?"
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
        with self._db.write() as db:
            return {table: db.execute(sql, args).rowcount for table, (sql, args) in statements.items()}
