"""`FirestoreLedger`: every ledger port on one project's collections (`database`)."""

from __future__ import annotations

from functions.adapters.firestore.database import Database
from functions.adapters.firestore.decisions import FirestoreDecisions
from functions.adapters.firestore.events import FirestoreKeptEvents
from functions.adapters.firestore.joins import FirestoreJoins
from functions.adapters.firestore.queue import FirestoreRunQueue
from functions.adapters.firestore.quotas import FirestoreQuotas
from functions.adapters.firestore.runs import FirestoreRunStore


class FirestoreLedger(
    FirestoreRunStore,
    FirestoreRunQueue,
    FirestoreJoins,
    FirestoreDecisions,
    FirestoreKeptEvents,
    FirestoreQuotas,
):
    """The parts, each a port (or its share of one), on one `Database`. Documents carry
    `expire_at` (KFP_TRIGGER_RETENTION_DAYS from now, or from a join window's end), by which
    the Terraform module's TTL policies delete them: no pruning."""

    def __init__(
        self,
        project: str,
        collection: str,
        retention_seconds: float = 30 * 86400.0,
        database: str = "(default)",
    ) -> None:
        super().__init__(Database(project, collection, retention_seconds, database))
