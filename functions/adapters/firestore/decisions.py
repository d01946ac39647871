"""The Firestore `DecisionLog`'s trail: event → decision → run, as `kfp-trigger explain` reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.adapters.firestore.database import EXPIRE_AT, Part, mapped
from functions.adapters.firestore.riders import ride
from functions.service.records import DecisionRecord, Outcome, Riders, prefix_end


class FirestoreDecisions(Part):
    def record(self, decision: DecisionRecord) -> None:
        self.write(Riders(decisions=(decision,)))

    def write(self, also: Riders) -> None:
        """Riders in one batch: one commit."""
        batch = self._db.client.batch()
        ride(self._db, batch, also)
        with mapped():
            batch.commit()

    def trail(self, identifier: str) -> list[DecisionRecord]:
        found: dict[str, Mapping[str, Any]] = {}
        with mapped():
            for field in ("event_id", "event_key", "run_key"):
                query = self._db.decisions.where(filter=self._db.equal(field, identifier))
                found.update((snapshot.id, snapshot.to_dict() or {}) for snapshot in query.stream())
        ordered = sorted(found.values(), key=lambda d: (d["at"], d["written"]))
        return [decision(d) for d in ordered]

    def count_decisions(self, outcome: Outcome) -> int:
        query: Any = self._db.decisions.where(filter=self._db.equal("outcome", outcome.value))
        with mapped():
            return int(query.count().get()[0][0].value)

    def recent(
        self, since: float, *, before: float | None = None, route: str | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        # With a route: the composite index (route, at desc) the Terraform module creates.
        FieldFilter = self._db.firestore.FieldFilter
        query: Any = self._db.decisions.where(filter=FieldFilter("at", ">=", since))
        if before is not None:
            query = query.where(filter=FieldFilter("at", "<", before))
        if route is not None:
            query = query.where(filter=self._db.equal("route", route))
        query = query.order_by("at", direction="DESCENDING").limit(limit)
        with mapped():
            return [decision(snapshot.to_dict() or {}) for snapshot in query.stream()]

    def find(self, prefix: str, limit: int = 100) -> list[DecisionRecord]:
        FieldFilter = self._db.firestore.FieldFilter
        found: dict[str, Mapping[str, Any]] = {}
        with mapped():
            for field in ("event_key", "run_key"):
                query = (
                    self._db.decisions.where(filter=FieldFilter(field, ">=", prefix))
                    .where(filter=FieldFilter(field, "<", prefix_end(prefix)))
                    .limit(limit)
                )
                found.update((snapshot.id, snapshot.to_dict() or {}) for snapshot in query.stream())
        newest = sorted(found.values(), key=lambda d: (d["at"], d["written"]), reverse=True)
        return [decision(d) for d in newest[:limit]]


def decision(document: Mapping[str, Any]) -> DecisionRecord:
    values = {k: v for k, v in document.items() if k not in ("written", EXPIRE_AT)}
    return DecisionRecord(**values | {"outcome": Outcome(document["outcome"])})
