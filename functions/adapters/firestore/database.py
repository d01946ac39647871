"""The Firestore ledger's collections, transactions and error mapping, shared by its parts.

Runs live in COLLECTION (document id: sha256 of the run key, which may contain `/`), decisions in
COLLECTION-decisions, batch membership in COLLECTION-members (one document per route and object
generation, so an object joins one batch of a route, ever), limit places in COLLECTION-places
(place i of a scope is a document created if absent, so a limit of N can never be held N+1 times),
flags and high-water marks in COLLECTION-flags and COLLECTION-marks, join windows and their parts
in COLLECTION-joins and COLLECTION-join-parts, kept events in COLLECTION-events.

Leases are compared on **server** time: a lease starts at a server timestamp and is compared
with the snapshot's `read_time`, so an instance with a skewed clock can neither steal a live claim
nor hold an expired one; the `now` the caller passes only stamps what it records. Every Google API
error becomes `TransientError`: a ledger that cannot record must not let an event be acknowledged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from events.errors import Refused, TransientError

T = TypeVar("T")
TRANSACTION_ATTEMPTS = 10  # contention retries inside one call; past them the caller retries
EXPIRE_AT = "expire_at"  # the TTL field: decisions, marks, rate and daily places, members, ended runs


def document_id(run_key: str) -> str:
    return hashlib.sha256(run_key.encode()).hexdigest()


@contextmanager
def mapped() -> Iterator[None]:
    """Google API errors in the block as kfp-trigger's: INVALID_ARGUMENT and OUT_OF_RANGE, which
    the same write gets every time (a document over 1 MiB, a field too large), as `Refused`; every
    other one as `TransientError`, so that a ledger that cannot record never lets an event be
    acknowledged (cloud.google.com/firestore/docs/understand-error-codes)."""
    from google.api_core import exceptions

    try:
        yield
    except (exceptions.InvalidArgument, exceptions.OutOfRange) as exc:
        raise Refused(
            f"the ledger refuses the record: {type(exc).__name__}: {str(exc.message)[:200]}"
        ) from exc
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as exc:
        raise TransientError(f"ledger unavailable: {type(exc).__name__}") from exc


Change = Callable[[Any, Any, Mapping[str, Any] | None, float], T]  # (transaction, ref, current, server now)


class Database:
    """One project's ledger collections (COLLECTION and its suffixed siblings) in one database
    (each deployment its own, so two in a project share nothing), and the client."""

    def __init__(self, project: str, collection: str, retention_seconds: float, database: str) -> None:
        from google.cloud import firestore

        self.firestore = firestore
        self.retention = timedelta(seconds=retention_seconds)
        self.client = firestore.Client(project=project, database=database)
        self.runs = self.client.collection(collection)
        self.decisions = self.client.collection(f"{collection}-decisions")
        self.members = self.client.collection(f"{collection}-members")
        self.places = self.client.collection(f"{collection}-places")
        self.flags = self.client.collection(f"{collection}-flags")
        self.marks = self.client.collection(f"{collection}-marks")
        self.joins = self.client.collection(f"{collection}-joins")
        self.join_parts = self.client.collection(f"{collection}-join-parts")
        self.events = self.client.collection(f"{collection}-events")
        self.settles = self.client.collection(f"{collection}-settles")  # never expire: they number batches

    def expiry(self) -> dict[str, datetime]:
        """The field a TTL policy deletes a document by (EXPIRE_AT): now + the retention."""
        return {EXPIRE_AT: datetime.now(UTC) + self.retention}

    def equal(self, field: str, value: object) -> Any:
        """A `where` filter: `field` == `value`."""
        return self.firestore.FieldFilter(field, "==", value)

    def commit(self, body: Callable[[Any], T]) -> T:
        """Run `body(transaction)` in a new transaction, run again on contention (the client's
        `transactional`); contention past its attempts is transient (the caller retries)."""
        transactional = self.firestore.transactional(body)
        with mapped():
            try:
                return cast(T, transactional(self.client.transaction(max_attempts=TRANSACTION_ATTEMPTS)))
            except ValueError as exc:  # the client's "Failed to commit transaction in N attempts"
                raise TransientError("ledger contention: the transaction did not commit; retry") from exc

    def transact(self, run_key: str, change: Change[T]) -> T:
        """Run `change(transaction, ref, current or None, server_now)` on a run in one transaction."""
        ref = self.runs.document(document_id(run_key))

        def apply(transaction: Any) -> T:
            snapshot = ref.get(transaction=transaction)
            server_now = snapshot.read_time.timestamp()
            return change(transaction, ref, snapshot.to_dict() if snapshot.exists else None, server_now)

        return self.commit(apply)


class Part:
    """A part of the Firestore ledger: the collections of one port, on the shared `Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db
