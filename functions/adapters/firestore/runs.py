"""The Firestore `RunStore`: one document per run key.

A claim is a create-if-absent (`create()`, atomic and lock-free, so a storm of duplicate
deliveries takes no transaction locks); a losing delivery decides BUSY or DONE from a plain read,
and only the takeover of an expired claim runs in a transaction. Every other state change is a
transaction that writes only if the run's state allows.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from functions.adapters.firestore.database import EXPIRE_AT, Database, Part, document_id, mapped
from functions.adapters.firestore.riders import decision_document, ride
from functions.service.records import (
    LEDGER_STATES,
    NO_RIDERS,
    OTHER_ROUTES,
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
from pipelines.backend import TERMINAL, RunState

TERMINAL_STATES = sorted(state.value for state in TERMINAL)


class FirestoreRunStore(Part):
    def read(
        self, now: float, run_keys: Collection[str], marks: Collection[str] = (), flags: Collection[str] = ()
    ) -> Reading:
        db = self._db
        refs = [db.runs.document(document_id(key)) for key in run_keys]
        refs += [db.marks.document(document_id(key)) for key in marks]
        refs += [db.flags.document(name) for name in flags]
        with mapped():  # one BatchGetDocuments call
            found = (
                {snapshot.reference.path: snapshot for snapshot in db.client.get_all(refs)} if refs else {}
            )
        documents = {path: snapshot.to_dict() or {} for path, snapshot in found.items() if snapshot.exists}
        at = min((snapshot.read_time.timestamp() for snapshot in found.values()), default=now)

        def document(collection: Any, name: str) -> Mapping[str, Any] | None:
            return documents.get(collection.document(name).path)

        runs = {key: document(db.runs, document_id(key)) for key in run_keys}
        raised = {key: document(db.marks, document_id(key)) or {} for key in marks}
        set_flags = {name: document(db.flags, name) or {} for name in flags}
        return Reading(
            runs={key: record(found) for key, found in runs.items() if found is not None},
            marks={key: int(found.get("value", 0)) for key, found in raised.items()},
            flags={name: bool(found.get("value")) for name, found in set_flags.items()},
            at=at,
        )

    def claim(self, run: NewRun, now: float, lease: float, also: Riders = NO_RIDERS) -> Claim:
        from google.api_core import exceptions

        db = self._db
        ref = db.runs.document(document_id(run.run_key))
        batch = db.client.batch()  # create-if-absent: atomic without a transaction, so racing
        batch.create(ref, new_document(run, RunState.CLAIMED, now, lease, db.firestore.SERVER_TIMESTAMP))
        ride(db, batch, also)  # deliveries take no locks; the riders only if it is created
        with mapped():
            try:
                created, *_ = batch.commit()
                return Claim(ClaimOutcome.WON, attempt=1, version=created.update_time)
            except exceptions.AlreadyExists:
                snapshot = ref.get()
        decided = claim_rule(record(snapshot.to_dict() or {}), snapshot.read_time.timestamp())
        if decided is not None:
            return decided

        def take_over(
            transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float
        ) -> Claim:
            taken = record(current or {})
            again = claim_rule(taken, server_now)
            if again is not None:  # somebody else took it over first
                return again
            attempt = taken.attempt + 1
            lease_start = db.firestore.SERVER_TIMESTAMP
            update = {
                "attempt": attempt,
                "lease_start": lease_start,
                "lease_seconds": lease,
                "updated_at": now,
            }
            transaction.update(ref, update)
            ride(db, transaction, also)
            return Claim(ClaimOutcome.WON, attempt, taken)

        return db.transact(run.run_key, take_over)

    def mark_submitted(
        self,
        run_key: str,
        attempt: int,
        run_id: str,
        now: float,
        also: Riders = NO_RIDERS,
        version: object = None,
    ) -> bool:
        from google.api_core import exceptions

        db = self._db
        update = {"state": RunState.SUBMITTED.value, "run_id": run_id, "submitted_at": now, "updated_at": now}
        if version is not None:  # unchanged since the claim: still CLAIMED by this attempt; no read
            batch = db.client.batch()
            option = db.client.write_option(last_update_time=version)
            batch.update(db.runs.document(document_id(run_key)), update, option=option)
            ride(db, batch, also)
            with mapped():
                try:
                    batch.commit()
                    return True
                except exceptions.FailedPrecondition:
                    pass  # changed since (released, taken over): decide in a transaction

        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> bool:
            ride(db, transaction, also)
            if current is None or current["state"] != RunState.CLAIMED or current["attempt"] != attempt:
                return False
            transaction.update(ref, update)
            return True

        return db.transact(run_key, change)

    def release(self, run_key: str, attempt: int) -> None:
        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> None:
            if current is not None and current["state"] == RunState.CLAIMED and current["attempt"] == attempt:
                transaction.update(ref, {"lease_seconds": 0.0})

        self._db.transact(run_key, change)

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
        db = self._db

        def change(
            transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float
        ) -> RunRecord | None:
            ride(db, transaction, also)
            if current is None or current["state"] in TERMINAL_STATES:
                return None
            if only_from is not None and current["state"] != only_from:
                return None
            update: dict[str, Any] = {
                "state": state.value,
                "details": dict(details),
                "finished_at": now,
                "updated_at": now,
            }
            if publish_lease > 0:
                update["publish_lease"] = server_now + publish_lease  # server time, as begin_publish
            transaction.update(ref, update | db.expiry())
            if decision is not None:
                transaction.create(db.decisions.document(), decision_document(db, decision))
            return record({**current, **update})

        return db.transact(run_key, change)

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        def change(
            transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float
        ) -> RunRecord | None:
            if current is None or current["state"] not in TERMINAL_STATES or current["published"]:
                return None
            if current["publish_lease"] > server_now:
                return None
            transaction.update(ref, {"publish_lease": server_now + lease})  # server time, from read_time
            return record(current)

        return self._db.transact(run_key, change)

    def mark_published(self, run_key: str, now: float, also: Riders = NO_RIDERS) -> None:
        db = self._db

        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> None:
            ride(db, transaction, also)
            if current is not None and not current["published"]:
                transaction.update(ref, {"published": True, "published_at": now, "updated_at": now})

        db.transact(run_key, change)

    def get(self, run_key: str) -> RunRecord | None:
        with mapped():
            snapshot = self._db.runs.document(document_id(run_key)).get()
        return record(snapshot.to_dict() or {}) if snapshot.exists else None

    def runs(
        self,
        *,
        route: str | None = None,
        state: RunState | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[RunRecord]:
        # At most `limit` read: the composite indexes (route|state, created_at) and (route, state,
        # created_at), each ascending and descending, that the Terraform module creates.
        query: Any = self._db.runs
        for field, value in (("route", route), ("state", state)):
            if value is not None:
                query = query.where(filter=self._db.equal(field, str(value)))
        direction = "DESCENDING" if newest_first else "ASCENDING"
        query = query.order_by("created_at", direction=direction).limit(limit)
        with mapped():
            return [record(snapshot.to_dict() or {}) for snapshot in query.stream()]

    def unfinished(self) -> list[RunRecord]:
        return runs_where(self._db, state=RunState.SUBMITTED.value)

    def stale_claims(self, now: float) -> list[RunRecord]:
        query = self._db.runs.where(filter=self._db.equal("state", RunState.CLAIMED.value))
        with mapped():
            snapshots = list(query.stream())
        stale = [
            found
            for snapshot in snapshots
            if (found := record(snapshot.to_dict() or {})).lease_until <= snapshot.read_time.timestamp()
        ]
        return sorted(stale, key=lambda found: found.created_at)

    def unpublished(self) -> list[RunRecord]:
        return [found for found in runs_where(self._db, published=False) if found.state.terminal]

    def summary(self, routes: Collection[str]) -> dict[tuple[str, RunState], int]:
        """One aggregation count per route and state, and per state for every route (each costs
        one read per 1,000 runs it counts), sent at once; the other routes' are the difference."""
        pairs = [(route, state) for route in [*routes, None] for state in LEDGER_STATES]

        def count(pair: tuple[str | None, RunState]) -> int:
            query: Any = self._db.runs.where(filter=self._db.equal("state", pair[1].value))
            if pair[0] is not None:
                query = query.where(filter=self._db.equal("route", pair[0]))
            with mapped():
                return int(query.count().get()[0][0].value)

        with ThreadPoolExecutor(max_workers=16) as pool:
            counted = dict(zip(pairs, pool.map(count, pairs), strict=True))
        named: dict[tuple[str, RunState], int] = {
            (str(route), state): n for (route, state), n in counted.items() if route is not None
        }
        for state in LEDGER_STATES:
            named[OTHER_ROUTES, state] = counted[None, state] - sum(named[route, state] for route in routes)
        return others_folded(named, routes)


def runs_where(db: Database, **equals: object) -> list[RunRecord]:
    """Every run whose fields equal `equals`, oldest first."""
    query: Any = db.runs
    for field, value in equals.items():
        query = query.where(filter=db.equal(field, value))
    with mapped():
        found = [record(snapshot.to_dict() or {}) for snapshot in query.stream()]
    return sorted(found, key=lambda run: run.created_at)


def new_document(
    run: NewRun, state: RunState, now: float, lease: float, server_time: object
) -> dict[str, Any]:
    return {
        "run_key": run.run_key,
        "route": run.route,
        "pipeline": run.pipeline,
        "version": run.version,
        "backend": run.backend,
        "params": dict(run.params),
        "event_id": run.event_id,
        "state": state.value,
        "attempt": 1,
        "lease_start": server_time,  # the lease runs from the server's clock
        "lease_seconds": lease,
        "run_id": None,
        "created_at": now,
        "updated_at": now,
        "submitted_at": None,
        "finished_at": None,
        "details": {},
        "publish_lease": 0.0,
        "published": False,
        "published_at": None,
        "not_before": 0.0,
        "concurrency": run.concurrency,
        "trace": run.trace,
        "partition": run.partition,
        "fresh_key": run.fresh_key,
    }


def record(document: Mapping[str, Any]) -> RunRecord:
    """A run document as the record the services see."""
    hidden = ("publish_lease", "published", "lease_start", "lease_seconds", EXPIRE_AT)
    values = {k: v for k, v in document.items() if k not in hidden}
    lease_until = document["lease_start"].timestamp() + document["lease_seconds"]
    return RunRecord(**(values | {"state": RunState(document["state"]), "lease_until": lease_until}))
