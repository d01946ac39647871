"""The Firestore `Ledger`: the same contract as the SQLite ledger, across instances.

Runs live in COLLECTION (document id: sha256 of the run key, which may contain `/`), decisions in
COLLECTION-decisions, batch membership in COLLECTION-members (one document per route and object
generation, so an object joins one batch of a route, ever), limit places in COLLECTION-places
(place i of a scope is a document created if absent, so a limit of N can never be held N+1 times),
flags and high-water marks in COLLECTION-flags and COLLECTION-marks. A claim is a create-if-absent
(`create()`, atomic and lock-free, so a storm of duplicate deliveries takes no transaction locks); a
losing delivery decides BUSY or DONE from a plain read, and only the takeover of an expired claim
runs in a transaction. Every other state change is a transaction that writes only if the run's state
allows. Leases are compared on **server** time: a lease starts at a server timestamp and is compared
with the snapshot's `read_time`, so an instance with a skewed clock can neither steal a live claim
nor hold an expired one; the `now` the caller passes only stamps what it records. Every Google API
error becomes `TransientError`: a ledger that cannot record must not let an event be acknowledged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from events.errors import TransientError
from functions.service.records import (
    LEDGER_STATES,
    NO_RIDERS,
    OTHER_ROUTES,
    Claim,
    ClaimOutcome,
    DecisionRecord,
    JoinState,
    JoinStatus,
    KeptEvent,
    NewRun,
    Outcome,
    Part,
    Reading,
    Riders,
    RunRecord,
    claim_rule,
    completed,
    current_window,
    others_folded,
    parts_from_json,
    parts_json,
    prefix_end,
)
from pipelines.backend import TERMINAL, RunState

T = TypeVar("T")
TRANSACTION_ATTEMPTS = 10  # contention retries inside one call; past them the caller retries
TERMINAL_STATES = sorted(state.value for state in TERMINAL)
EXPIRE_AT = "expire_at"  # the TTL field: decisions, marks, rate and daily places, members, ended runs
TTL_COLLECTIONS = ("", "-decisions", "-members", "-places", "-marks")  # suffixes of COLLECTION


def document_id(run_key: str) -> str:
    return hashlib.sha256(run_key.encode()).hexdigest()


@contextmanager
def _mapped() -> Iterator[None]:
    from google.api_core import exceptions

    try:
        yield
    except (exceptions.GoogleAPICallError, exceptions.RetryError) as exc:
        raise TransientError(f"ledger unavailable: {type(exc).__name__}") from exc


class FirestoreLedger:
    def __init__(self, project: str, collection: str, retention_seconds: float = 30 * 86400.0) -> None:
        from google.cloud import firestore

        self._firestore = firestore
        self._retention = timedelta(seconds=retention_seconds)
        self._db = firestore.Client(project=project)
        self._runs = self._db.collection(collection)
        self._decisions = self._db.collection(f"{collection}-decisions")
        self._members = self._db.collection(f"{collection}-members")
        self._places = self._db.collection(f"{collection}-places")
        self._flags = self._db.collection(f"{collection}-flags")
        self._marks = self._db.collection(f"{collection}-marks")
        self._joins = self._db.collection(f"{collection}-joins")
        self._join_parts = self._db.collection(f"{collection}-join-parts")
        self._events = self._db.collection(f"{collection}-events")

    def _expiry(self) -> dict[str, datetime]:
        """The field a TTL policy deletes a document by (EXPIRE_AT): now + the retention."""
        return {EXPIRE_AT: datetime.now(UTC) + self._retention}

    def _commit(self, transactional: Callable[[Any], T]) -> T:
        """Run a `@transactional` function in a new transaction; contention past the client's
        retries is transient (the caller retries)."""
        with _mapped():
            try:
                return transactional(self._db.transaction(max_attempts=TRANSACTION_ATTEMPTS))
            except ValueError as exc:  # the client's "Failed to commit transaction in N attempts"
                raise TransientError("ledger contention: the transaction did not commit; retry") from exc

    def _transact(self, run_key: str, change: Callable[[Any, Any, Mapping[str, Any] | None, float], T]) -> T:
        """Run `change(transaction, ref, current or None, server_now)` in one transaction."""
        ref = self._runs.document(document_id(run_key))

        @self._firestore.transactional
        def apply(transaction: Any) -> T:
            snapshot = ref.get(transaction=transaction)
            server_now = snapshot.read_time.timestamp()
            return change(transaction, ref, snapshot.to_dict() if snapshot.exists else None, server_now)

        return self._commit(apply)  # type: ignore[no-any-return]  # `transactional` is untyped

    def _ride(self, writes: Any, also: Riders) -> None:
        """Add riders to a batch or a transaction (`writes`)."""
        if (event := also.kept) is not None:
            document = {
                "event_id": event.event_id,
                "at": event.at,
                "attributes": dict(event.attributes),
                "data": event.data,
                "reason": event.reason,
                "quarantined": bool(event.reason),
            }
            writes.set(self._events.document(document_id(event.event_id)), document | self._expiry())
        for key, value, _ in also.marks:
            maximum = {"key": key, "value": self._firestore.Maximum(value)}  # an atomic max
            writes.set(self._marks.document(document_id(key)), maximum | self._expiry(), merge=True)
        for decision in also.decisions:
            writes.create(self._decisions.document(), self._decision_document(decision))

    def write(self, also: Riders) -> None:
        """Riders in one batch: one commit."""
        batch = self._db.batch()
        self._ride(batch, also)
        with _mapped():
            batch.commit()

    def read(
        self, now: float, run_keys: Collection[str], marks: Collection[str] = (), flags: Collection[str] = ()
    ) -> Reading:
        refs = [self._runs.document(document_id(key)) for key in run_keys]
        refs += [self._marks.document(document_id(key)) for key in marks]
        refs += [self._flags.document(name) for name in flags]
        with _mapped():  # one BatchGetDocuments call
            found = {snapshot.reference.path: snapshot for snapshot in self._db.get_all(refs)} if refs else {}
        documents = {path: snapshot.to_dict() or {} for path, snapshot in found.items() if snapshot.exists}
        at = min((snapshot.read_time.timestamp() for snapshot in found.values()), default=now)

        def document(collection: Any, name: str) -> Mapping[str, Any] | None:
            return documents.get(collection.document(name).path)

        runs = {key: document(self._runs, document_id(key)) for key in run_keys}
        raised = {key: document(self._marks, document_id(key)) or {} for key in marks}
        set_flags = {name: document(self._flags, name) or {} for name in flags}
        return Reading(
            runs={key: _record(found) for key, found in runs.items() if found is not None},
            marks={key: int(found.get("value", 0)) for key, found in raised.items()},
            flags={name: bool(found.get("value")) for name, found in set_flags.items()},
            at=at,
        )

    def claim(self, run: NewRun, now: float, lease: float, also: Riders = NO_RIDERS) -> Claim:
        from google.api_core import exceptions

        ref = self._runs.document(document_id(run.run_key))
        batch = self._db.batch()  # create-if-absent: atomic without a transaction, so racing
        batch.create(ref, _new_document(run, RunState.CLAIMED, now, lease, self._firestore.SERVER_TIMESTAMP))
        self._ride(batch, also)  # deliveries take no locks; the riders only if it is created
        with _mapped():
            try:
                created, *_ = batch.commit()
                return Claim(ClaimOutcome.WON, attempt=1, version=created.update_time)
            except exceptions.AlreadyExists:
                snapshot = ref.get()
        decided = claim_rule(_record(snapshot.to_dict() or {}), snapshot.read_time.timestamp())
        if decided is not None:
            return decided

        def take_over(
            transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float
        ) -> Claim:
            record = _record(current or {})
            again = claim_rule(record, server_now)
            if again is not None:  # somebody else took it over first
                return again
            attempt = record.attempt + 1
            transaction.update(
                ref,
                {
                    "attempt": attempt,
                    "lease_start": self._firestore.SERVER_TIMESTAMP,
                    "lease_seconds": lease,
                    "updated_at": now,
                },
            )
            self._ride(transaction, also)
            return Claim(ClaimOutcome.WON, attempt, record)

        return self._transact(run.run_key, take_over)

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

        update = {"state": RunState.SUBMITTED.value, "run_id": run_id, "submitted_at": now, "updated_at": now}
        if version is not None:  # unchanged since the claim: still CLAIMED by this attempt; no read
            batch = self._db.batch()
            batch.update(
                self._runs.document(document_id(run_key)),
                update,
                option=self._db.write_option(last_update_time=version),
            )
            self._ride(batch, also)
            with _mapped():
                try:
                    batch.commit()
                    return True
                except exceptions.FailedPrecondition:
                    pass  # changed since (released, taken over): decide in a transaction

        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> bool:
            self._ride(transaction, also)
            if current is None or current["state"] != RunState.CLAIMED or current["attempt"] != attempt:
                return False
            transaction.update(ref, update)
            return True

        return self._transact(run_key, change)

    def release(self, run_key: str, attempt: int) -> None:
        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> None:
            if current is not None and current["state"] == RunState.CLAIMED and current["attempt"] == attempt:
                transaction.update(ref, {"lease_seconds": 0.0})

        self._transact(run_key, change)

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

        def change(
            transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float
        ) -> RunRecord | None:
            self._ride(transaction, also)
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
            transaction.update(ref, update | self._expiry())
            if decision is not None:
                transaction.create(self._decisions.document(), self._decision_document(decision))
            return _record({**current, **update})

        return self._transact(run_key, change)

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        def change(
            transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float
        ) -> RunRecord | None:
            if current is None or current["state"] not in TERMINAL_STATES or current["published"]:
                return None
            if current["publish_lease"] > server_now:
                return None
            transaction.update(ref, {"publish_lease": server_now + lease})  # server time, from read_time
            return _record(current)

        return self._transact(run_key, change)

    def mark_published(self, run_key: str, now: float, also: Riders = NO_RIDERS) -> None:
        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> None:
            self._ride(transaction, also)
            if current is not None and not current["published"]:
                transaction.update(ref, {"published": True, "published_at": now, "updated_at": now})

        self._transact(run_key, change)

    def get(self, run_key: str) -> RunRecord | None:
        with _mapped():
            snapshot = self._runs.document(document_id(run_key)).get()
        return _record(snapshot.to_dict() or {}) if snapshot.exists else None

    def _query(self, **equals: object) -> list[RunRecord]:
        query: Any = self._runs
        for field, value in equals.items():
            query = query.where(filter=self._firestore.FieldFilter(field, "==", value))
        with _mapped():
            records = [_record(snapshot.to_dict() or {}) for snapshot in query.stream()]
        return sorted(records, key=lambda record: record.created_at)

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
        query: Any = self._runs
        for field, value in (("route", route), ("state", state)):
            if value is not None:
                query = query.where(filter=self._firestore.FieldFilter(field, "==", str(value)))
        direction = "DESCENDING" if newest_first else "ASCENDING"
        query = query.order_by("created_at", direction=direction).limit(limit)
        with _mapped():
            return [_record(snapshot.to_dict() or {}) for snapshot in query.stream()]

    def unfinished(self) -> list[RunRecord]:
        return self._query(state=RunState.SUBMITTED.value)

    def stale_claims(self, now: float) -> list[RunRecord]:
        query = self._runs.where(filter=self._firestore.FieldFilter("state", "==", RunState.CLAIMED.value))
        with _mapped():
            snapshots = list(query.stream())
        stale = [
            record
            for snapshot in snapshots
            if (record := _record(snapshot.to_dict() or {})).lease_until <= snapshot.read_time.timestamp()
        ]
        return sorted(stale, key=lambda record: record.created_at)

    def unpublished(self) -> list[RunRecord]:
        return [record for record in self._query(published=False) if record.state.terminal]

    def record(self, decision: DecisionRecord) -> None:
        self.write(Riders(decisions=(decision,)))

    def _decision_document(self, decision: DecisionRecord) -> dict[str, Any]:
        return {
            "at": decision.at,
            "event_id": decision.event_id,
            "event_key": decision.event_key,
            "event_type": decision.event_type,
            "outcome": decision.outcome.value,
            "route": decision.route,
            "reason": decision.reason,
            "run_key": decision.run_key,
            "written": self._firestore.SERVER_TIMESTAMP,
            **self._expiry(),
        }

    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> bool:
            if current is None or current["state"] != RunState.CLAIMED or current["attempt"] != attempt:
                return False
            update = {"state": RunState.QUEUED.value, "details": {"queued": reason}, "lease_seconds": 0.0}
            transaction.update(ref, update | {"updated_at": now})
            return True

        return self._transact(run_key, change)

    def queued(self, now: float) -> list[RunRecord]:
        return [record for record in self._query(state=RunState.QUEUED.value) if record.not_before <= now]

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, server_now: float) -> Claim:
            if current is None:
                raise KeyError(run_key)
            record = _record(current)
            decided = claim_rule(record, server_now, RunState.QUEUED)
            if decided is not None:
                return decided
            attempt = record.attempt + 1
            transaction.update(
                ref,
                {
                    "state": RunState.CLAIMED.value,
                    "attempt": attempt,
                    "lease_start": self._firestore.SERVER_TIMESTAMP,
                    "lease_seconds": lease,
                    "updated_at": now,
                },
            )
            return Claim(ClaimOutcome.WON, attempt, record)

        return self._transact(run_key, change)

    def join_batch(
        self, run: NewRun, not_before: float, member: str, identity: str, now: float
    ) -> tuple[str, bool] | None:
        run_ref = self._runs.document(document_id(run.run_key))
        member_ref = self._members.document(document_id(f"{run.route}\n{identity}"))
        document = _new_document(run, RunState.QUEUED, now, 0.0, self._firestore.SERVER_TIMESTAMP)

        @self._firestore.transactional
        def join(transaction: Any) -> tuple[str, bool] | None:
            held = member_ref.get(transaction=transaction)
            if held.exists:
                return str((held.to_dict() or {})["run_key"]), False
            current = run_ref.get(transaction=transaction)
            if not current.exists:
                transaction.create(run_ref, document | {"not_before": not_before})
            elif (current.to_dict() or {})["state"] != RunState.QUEUED:
                return None
            fields = {"route": run.route, "identity": identity, "run_key": run.run_key, "member": member}
            transaction.create(member_ref, fields | {"at": now} | self._expiry())
            return run.run_key, True

        return self._commit(join)  # type: ignore[no-any-return]  # `transactional` is untyped

    def members(self, run_key: str) -> list[str]:
        query = self._members.where(filter=self._firestore.FieldFilter("run_key", "==", run_key))
        with _mapped():
            return sorted({str((snapshot.to_dict() or {})["member"]) for snapshot in query.stream()})

    def arrive(
        self,
        route: str,
        key: str,
        part: str,
        arrival: Part,
        names: tuple[str, ...],
        within: float,
        now: float,
    ) -> JoinState:
        # Lock-free where deliveries race: a part is a document created if absent, so twenty
        # concurrent deliveries of the last part take no locks (as `claim` does). Only opening a
        # window is a transaction, among the arrivals that find none open. The key's latest
        # window is one document; a window a newer one replaces moves to a document of its own.
        from google.api_core import exceptions

        if (held := self._holding_event(route, key, arrival.event_id, names)) is not None:
            return held  # a redelivery, however late: the window that holds it (`arrive_rule`)
        latest_ref = self._joins.document(document_id(f"{route}\n{key}"))
        with _mapped():
            snapshot = latest_ref.get()
        latest = _window(snapshot.to_dict() or {}) if snapshot.exists else None
        window = current_window(latest, route, key, within, now)
        if window is not latest:
            window = self._open(latest_ref, route, key, names, within, now)
        identity = window_id(window)
        document: dict[str, Any] = {"window": identity, "part": part, "route": route, "key": key}
        document |= {"opened": window.opened, "expires": window.expires, EXPIRE_AT: self._expires_at(window)}
        with _mapped():
            try:
                self._join_parts.document(document_id(f"{identity}\n{part}")).create(
                    document | _part_document(arrival)
                )
                added = True
            except exceptions.AlreadyExists:
                added = False
        parts = self._parts_of(identity)
        status = completed(parts, names)
        if status is JoinStatus.COMPLETE and window.status is JoinStatus.OPEN:
            self._mark_complete(route, key, window.opened)
        return replace(window, parts=parts, status=status, added=added)

    def _holding_event(self, route: str, key: str, event_id: str, names: tuple[str, ...]) -> JoinState | None:
        """The window whose parts include the event `event_id`, if one does."""
        FieldFilter = self._firestore.FieldFilter
        query = (
            self._join_parts.where(filter=FieldFilter("route", "==", route))
            .where(filter=FieldFilter("key", "==", key))
            .where(filter=FieldFilter("event_id", "==", event_id))
        )
        with _mapped():
            found = [snapshot.to_dict() or {} for snapshot in query.stream()]
            if not found:
                return None
            identity = str(found[0]["window"])
            stored = self._joins.where(filter=FieldFilter("window", "==", identity)).stream()
            statuses = [str((snapshot.to_dict() or {})["status"]) for snapshot in stored]
        parts = self._parts_of(identity)
        status = completed(parts, names)
        if status is not JoinStatus.COMPLETE and statuses:
            status = JoinStatus(statuses[0])
        opened, expires = float(found[0]["opened"]), float(found[0]["expires"])
        return JoinState(route, key, opened, expires, status, parts)

    def _open(
        self, latest_ref: Any, route: str, key: str, names: tuple[str, ...], within: float, now: float
    ) -> JoinState:
        """Open a new window for the key, unless another arrival just did (then that one)."""

        @self._firestore.transactional
        def open_window(transaction: Any) -> JoinState:
            snapshot = latest_ref.get(transaction=transaction)
            latest = _window(snapshot.to_dict() or {}) if snapshot.exists else None
            window = current_window(latest, route, key, within, now)
            if window is latest:
                return window
            if latest is not None:  # the replaced window keeps a document of its own
                transaction.set(self._joins.document(window_id(latest)), snapshot.to_dict() or {})
            transaction.set(latest_ref, self._window_document(window, names))
            return window

        return self._commit(open_window)  # type: ignore[no-any-return]  # `transactional` is untyped

    def _mark_complete(self, route: str, key: str, opened: float) -> None:
        """Record the window COMPLETE in its documents (the key's latest, and its own once
        replaced), each write conditioned on the document as read (no lock)."""
        from google.api_core import exceptions

        documents = (document_id(f"{route}\n{key}"), window_id_of(route, key, opened))
        for ref in (self._joins.document(name) for name in documents):
            with _mapped():
                for _ in range(TRANSACTION_ATTEMPTS):
                    snapshot = ref.get()
                    current = snapshot.to_dict() or {}
                    if current.get("opened") != opened or current["status"] != JoinStatus.OPEN:
                        break  # not this window's document, or marked already
                    try:
                        option = self._db.write_option(last_update_time=snapshot.update_time)
                        ref.update({"status": JoinStatus.COMPLETE.value}, option=option)
                        break
                    except exceptions.FailedPrecondition:
                        continue  # changed since read: look again

    def _parts_of(self, identity: str) -> dict[str, Part]:
        query = self._join_parts.where(filter=self._firestore.FieldFilter("window", "==", identity))
        with _mapped():
            stored = {str(d["part"]): d for d in (s.to_dict() or {} for s in query.stream())}
        return parts_from_json(stored)

    def _expires_at(self, window: JoinState) -> datetime:
        return datetime.fromtimestamp(window.expires, UTC) + self._retention

    def _window_document(self, window: JoinState, names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "window": window_id(window),
            "names": list(names),
            "route": window.route,
            "key": window.key,
            "opened": window.opened,
            "expires": window.expires,
            "status": window.status.value,
            EXPIRE_AT: self._expires_at(window),
        }

    def joins(
        self, *, status: JoinStatus | None = None, route: str | None = None, key: str | None = None
    ) -> list[JoinState]:
        FieldFilter = self._firestore.FieldFilter
        query: Any = self._joins
        for name, value in (("status", status), ("route", route), ("key", key)):
            if value is not None:
                query = query.where(filter=FieldFilter(name, "==", str(value)))
        with _mapped():
            found = [_window(snapshot.to_dict() or {}) for snapshot in query.stream()]
        windows = {window_id(window): window for window in found}  # the latest is also its own: once
        return sorted(
            (replace(window, parts=self._parts_of(identity)) for identity, window in windows.items()),
            key=lambda window: window.opened,
            reverse=True,
        )

    def expire(self, route: str, key: str, opened: float, closed_before: float) -> bool:
        identity = window_id_of(route, key, opened)
        query = self._joins.where(filter=self._firestore.FieldFilter("window", "==", identity))
        with _mapped():
            refs = [snapshot.reference for snapshot in query.stream()]
        return any([self._expire_one(ref, identity, closed_before) for ref in refs])

    def _expire_one(self, ref: Any, identity: str, closed_before: float) -> bool:
        parts = self._join_parts.where(filter=self._firestore.FieldFilter("window", "==", identity))

        @self._firestore.transactional
        def expire(transaction: Any) -> bool:
            snapshot = ref.get(transaction=transaction)
            current = snapshot.to_dict() or {}
            if not snapshot.exists or current["status"] != JoinStatus.OPEN:
                return False
            if current["expires"] > closed_before:
                return False
            arrived = {str((s.to_dict() or {})["part"]) for s in transaction.get(parts)}
            if set(current.get("names", ())) <= arrived:  # complete: its last arrival's mark lagged
                transaction.update(ref, {"status": JoinStatus.COMPLETE.value})
                return False
            transaction.update(ref, {"status": JoinStatus.EXPIRED.value})
            return True

        return self._commit(expire)  # type: ignore[no-any-return]  # `transactional` is untyped

    def keep(self, event: KeptEvent) -> None:
        self.write(Riders(kept=event))

    def kept(self, event_id: str) -> KeptEvent | None:
        with _mapped():
            snapshot = self._events.document(document_id(event_id)).get()
        return _kept(snapshot.to_dict() or {}) if snapshot.exists else None

    def quarantined(self, since: float) -> list[KeptEvent]:
        # One equality filter (an automatic index); the time is filtered here.
        query = self._events.where(filter=self._firestore.FieldFilter("quarantined", "==", True))
        with _mapped():
            found = [_kept(snapshot.to_dict() or {}) for snapshot in query.stream()]
        return sorted((event for event in found if event.at >= since), key=lambda event: event.at)

    def _holding(self, scope: str, holder: str) -> list[Any]:
        FieldFilter = self._firestore.FieldFilter
        query = self._places.where(filter=FieldFilter("scope", "==", scope)).where(
            filter=FieldFilter("holder", "==", holder)
        )
        return list(query.stream())

    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        from google.api_core import exceptions

        with _mapped():
            if self._holding(scope, holder):
                return True
            counted: Any = self._places.where(
                filter=self._firestore.FieldFilter("scope", "==", scope)
            ).count()
            held = int(counted.get()[0][0].value)
            if held >= limit:
                return False
            prefix = document_id(scope)
            for slot in [*range(held, limit), *range(held)]:  # the free places are most likely past `held`
                try:
                    ended = scope.startswith(("active:", "key:"))  # given back when the run ends
                    expiry = {} if ended else self._expiry()
                    self._places.document(f"{prefix}-{slot}").create(
                        {"scope": scope, "holder": holder, "at": now} | expiry
                    )
                    return True
                except exceptions.AlreadyExists:
                    continue
        return False

    def let_go(self, scope: str, holder: str) -> None:
        with _mapped():
            for snapshot in self._holding(scope, holder):
                snapshot.reference.delete()

    def flag(self, name: str) -> bool:
        with _mapped():
            snapshot = self._flags.document(name).get()
        return bool(snapshot.exists and (snapshot.to_dict() or {}).get("value"))

    def set_flag(self, name: str, on: bool) -> None:
        with _mapped():
            self._flags.document(name).set({"value": on})

    def raise_mark(self, key: str, value: int, now: float) -> int:
        ref = self._marks.document(document_id(key))
        with _mapped():
            maximum = {"key": key, "value": self._firestore.Maximum(value)}
            ref.set(maximum | self._expiry(), merge=True)  # an atomic max
            return int((ref.get().to_dict() or {})["value"])

    def mark(self, key: str) -> int:
        with _mapped():
            snapshot = self._marks.document(document_id(key)).get()
        return int((snapshot.to_dict() or {}).get("value", 0)) if snapshot.exists else 0

    def holders(self, scope: str) -> list[str]:
        query = self._places.where(filter=self._firestore.FieldFilter("scope", "==", scope))
        with _mapped():
            return sorted(str((snapshot.to_dict() or {})["holder"]) for snapshot in query.stream())

    def trail(self, identifier: str) -> list[DecisionRecord]:
        found: dict[str, Mapping[str, Any]] = {}
        with _mapped():
            for field in ("event_id", "event_key", "run_key"):
                query = self._decisions.where(filter=self._firestore.FieldFilter(field, "==", identifier))
                found.update((snapshot.id, snapshot.to_dict() or {}) for snapshot in query.stream())
        ordered = sorted(found.values(), key=lambda d: (d["at"], d["written"]))
        return [_decision(d) for d in ordered]

    def summary(self, routes: Collection[str]) -> dict[tuple[str, RunState], int]:
        """One aggregation count per route and state, and per state for every route (each costs
        one read per 1,000 runs it counts), sent at once; the other routes' are the difference."""
        from concurrent.futures import ThreadPoolExecutor

        FieldFilter = self._firestore.FieldFilter
        pairs = [(route, state) for route in [*routes, None] for state in LEDGER_STATES]

        def count(pair: tuple[str | None, RunState]) -> int:
            query: Any = self._runs.where(filter=FieldFilter("state", "==", pair[1].value))
            if pair[0] is not None:
                query = query.where(filter=FieldFilter("route", "==", pair[0]))
            with _mapped():
                return int(query.count().get()[0][0].value)

        with ThreadPoolExecutor(max_workers=16) as pool:
            counted = dict(zip(pairs, pool.map(count, pairs), strict=True))
        named: dict[tuple[str, RunState], int] = {
            (str(route), state): n for (route, state), n in counted.items() if route is not None
        }
        for state in LEDGER_STATES:
            named[OTHER_ROUTES, state] = counted[None, state] - sum(named[route, state] for route in routes)
        return others_folded(named, routes)

    def count_decisions(self, outcome: Outcome) -> int:
        query: Any = self._decisions.where(filter=self._firestore.FieldFilter("outcome", "==", outcome.value))
        with _mapped():
            return int(query.count().get()[0][0].value)

    def recent(
        self, since: float, *, before: float | None = None, route: str | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        # With a route: the composite index (route, at desc) the Terraform module creates.
        query: Any = self._decisions.where(filter=self._firestore.FieldFilter("at", ">=", since))
        if before is not None:
            query = query.where(filter=self._firestore.FieldFilter("at", "<", before))
        if route is not None:
            query = query.where(filter=self._firestore.FieldFilter("route", "==", route))
        query = query.order_by("at", direction="DESCENDING").limit(limit)
        with _mapped():
            return [_decision(snapshot.to_dict() or {}) for snapshot in query.stream()]

    def find(self, prefix: str, limit: int = 100) -> list[DecisionRecord]:
        found: dict[str, Mapping[str, Any]] = {}
        with _mapped():
            for field in ("event_key", "run_key"):
                query = (
                    self._decisions.where(filter=self._firestore.FieldFilter(field, ">=", prefix))
                    .where(filter=self._firestore.FieldFilter(field, "<", prefix_end(prefix)))
                    .limit(limit)
                )
                found.update((snapshot.id, snapshot.to_dict() or {}) for snapshot in query.stream())
        newest = sorted(found.values(), key=lambda d: (d["at"], d["written"]), reverse=True)
        return [_decision(d) for d in newest[:limit]]


def _new_document(
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
    }


def _decision(document: Mapping[str, Any]) -> DecisionRecord:
    values = {k: v for k, v in document.items() if k not in ("written", EXPIRE_AT)}
    return DecisionRecord(**values | {"outcome": Outcome(document["outcome"])})


def _record(document: Mapping[str, Any]) -> RunRecord:
    hidden = ("publish_lease", "published", "lease_start", "lease_seconds", EXPIRE_AT)
    values = {k: v for k, v in document.items() if k not in hidden}
    lease_until = document["lease_start"].timestamp() + document["lease_seconds"]
    return RunRecord(**(values | {"state": RunState(document["state"]), "lease_until": lease_until}))


def _window(document: Mapping[str, Any]) -> JoinState:
    """A window document, without its parts (those are documents of their own)."""
    return JoinState(
        str(document["route"]),
        str(document["key"]),
        float(document["opened"]),
        float(document["expires"]),
        JoinStatus(document["status"]),
        {},
    )


def window_id_of(route: str, key: str, opened: float) -> str:
    """The document id naming one window of a key (its parts carry it)."""
    return document_id(f"{route}\n{key}\n{opened!r}")


def window_id(window: JoinState) -> str:
    return window_id_of(window.route, window.key, window.opened)


def _part_document(arrival: Part) -> dict[str, Any]:
    return parts_json({"part": arrival})["part"]


def _kept(document: Mapping[str, Any]) -> KeptEvent:
    return KeptEvent(
        str(document["event_id"]),
        float(document["at"]),
        dict(document.get("attributes") or {}),
        str(document.get("data", "")),
        str(document.get("reason", "")),
    )
