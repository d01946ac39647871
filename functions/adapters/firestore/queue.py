"""The Firestore run queue: runs held back (QUEUED), taken to start, and coalescing batches' members."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from functions.adapters.firestore.database import Part, document_id, mapped
from functions.adapters.firestore.runs import new_document, record, runs_where
from functions.service.records import (
    Claim,
    ClaimOutcome,
    NewRun,
    RunRecord,
    SettleHead,
    SettleWindow,
    claim_rule,
    settle_rule,
)
from pipelines.backend import RunState

MEMBERS_PER_COMMIT = 500


class FirestoreRunQueue(Part):
    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        def change(transaction: Any, ref: Any, current: Mapping[str, Any] | None, _: float) -> bool:
            if current is None or current["state"] != RunState.CLAIMED or current["attempt"] != attempt:
                return False
            update = {"state": RunState.QUEUED.value, "details": {"queued": reason}, "lease_seconds": 0.0}
            transaction.update(ref, update | {"updated_at": now})
            return True

        return self._db.transact(run_key, change)

    def queued(self, now: float) -> list[RunRecord]:
        return [run for run in runs_where(self._db, state=RunState.QUEUED.value) if run.not_before <= now]

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        """A plain read, then the write on condition that the run is unchanged since (a
        compare-and-set, no transaction). Every completion notice and reconcile pass starts what
        the queue allows, so several instances take the same queued run at once: one wins, the
        others learn it from the failed condition at once, instead of holding read locks that make
        each other's commits wait and retry (the emulator waits out a 2-second lock timeout)."""
        from google.api_core import exceptions

        db = self._db
        ref = db.runs.document(document_id(run_key))
        with mapped():
            snapshot = ref.get()
        if not snapshot.exists:
            raise KeyError(run_key)
        taken = record(snapshot.to_dict() or {})
        decided = claim_rule(taken, snapshot.read_time.timestamp(), RunState.QUEUED)
        if decided is not None:
            return decided
        attempt = taken.attempt + 1
        update = {
            "state": RunState.CLAIMED.value,
            "attempt": attempt,
            "lease_start": db.firestore.SERVER_TIMESTAMP,
            "lease_seconds": lease,
            "updated_at": now,
        }
        batch = db.client.batch()
        batch.update(ref, update, option=db.client.write_option(last_update_time=snapshot.update_time))
        with mapped():
            try:
                batch.commit()
            except exceptions.FailedPrecondition:  # another took it (or changed it) since the read
                return Claim(ClaimOutcome.BUSY, taken.attempt, taken, lease)
        return Claim(ClaimOutcome.WON, attempt, taken)

    def join_batch(
        self, run: NewRun, not_before: float, member: str, identity: str, now: float
    ) -> tuple[str, bool] | None:
        db = self._db
        run_ref = db.runs.document(document_id(run.run_key))
        member_ref = db.members.document(document_id(f"{run.route}\n{identity}"))
        document = new_document(run, RunState.QUEUED, now, 0.0, db.firestore.SERVER_TIMESTAMP)

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
            transaction.create(member_ref, fields | {"at": now} | db.expiry())
            return run.run_key, True

        return db.commit(join)

    def settle(
        self, run: NewRun, window: SettleWindow, member: str, identity: str, now: float
    ) -> SettleHead | str:
        db = self._db
        head_ref = db.settles.document(document_id(f"{run.route}\n{run.run_key}"))
        member_ref = db.members.document(document_id(f"{run.route}\n{identity}"))

        server = db.firestore.SERVER_TIMESTAMP

        def join(transaction: Any) -> SettleHead | str:
            held = member_ref.get(transaction=transaction)
            if held.exists:
                return str((held.to_dict() or {})["run_key"])
            found = head_ref.get(transaction=transaction)
            head = SettleHead(**(found.to_dict() or {})) if found.exists else None
            state = None
            if head is not None:
                current = db.runs.document(document_id(head.run_key)).get(transaction=transaction)
                state = RunState((current.to_dict() or {})["state"]) if current.exists else None
            joined = settle_rule(head, state, run.run_key, window, now)
            run_ref = db.runs.document(document_id(joined.run_key))
            queued = {"not_before": joined.due, "details": {"queued": joined.story()}, "updated_at": now}
            if head is None or joined.number != head.number:
                batch = replace(run, run_key=joined.run_key)
                transaction.create(run_ref, new_document(batch, RunState.QUEUED, now, 0.0, server) | queued)
            else:
                transaction.update(run_ref, queued)
            transaction.set(head_ref, asdict(joined))
            fields = {"route": run.route, "identity": identity, "run_key": joined.run_key, "member": member}
            transaction.create(member_ref, fields | {"at": now} | db.expiry())
            return joined

        return db.commit(join)

    def settling(self, route: str, key: str) -> SettleHead | None:
        with mapped():
            found = self._db.settles.document(document_id(f"{route}\n{key}")).get()
        return SettleHead(**(found.to_dict() or {})) if found.exists else None

    def add_members(self, run: NewRun, members: Sequence[str], now: float) -> None:
        # One document per object, as a coalesced batch's: a run document holds at most 1 MiB,
        # ~15,000 URIs (firebase.google.com/docs/firestore/quotas: "Maximum size for a
        # document"); a batched write at most 500 writes ("Maximum number of writes that can be
        # passed to a Commit operation"). Set, not create: a redelivery rewrites the same.
        db = self._db
        for start in range(0, len(members), MEMBERS_PER_COMMIT):
            batch = db.client.batch()
            for member in members[start : start + MEMBERS_PER_COMMIT]:
                identity = f"{run.run_key}\n{member}"
                fields = {"route": run.route, "identity": identity, "run_key": run.run_key, "member": member}
                batch.set(
                    db.members.document(document_id(f"{run.route}\n{identity}")),
                    fields | {"at": now} | db.expiry(),
                )
            with mapped():
                batch.commit()

    def members(self, run_key: str) -> list[str]:
        query = self._db.members.where(filter=self._db.equal("run_key", run_key))
        with mapped():
            return sorted({str((snapshot.to_dict() or {})["member"]) for snapshot in query.stream()})
