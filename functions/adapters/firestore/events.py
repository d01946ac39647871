"""The Firestore kept events: what replay sends through the intake again (the quarantined among them)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from functions.adapters.firestore.database import Part, document_id, mapped
from functions.adapters.firestore.riders import ride
from functions.service.records import KeptEvent, Riders

PAGE = 1000  # kept events read at a time


class FirestoreKeptEvents(Part):
    def keep(self, event: KeptEvent) -> None:
        batch = self._db.client.batch()
        ride(self._db, batch, Riders(kept=event))
        with mapped():
            batch.commit()

    def kept(self, event_id: str) -> KeptEvent | None:
        with mapped():
            snapshot = self._db.events.document(document_id(event_id)).get()
        return kept(snapshot.to_dict() or {}) if snapshot.exists else None

    def kept_since(self, since: float) -> Iterator[KeptEvent]:
        # A range on one field, ordered by it: its automatic index. A page starts after the
        # previous page's last document (the cursor orders ties by document name).
        query = self._db.events.where(filter=self._db.firestore.FieldFilter("at", ">=", since)).order_by("at")
        last = None
        while True:
            page = query.start_after(last) if last is not None else query
            with mapped():
                snapshots = list(page.limit(PAGE).stream())
            yield from (kept(snapshot.to_dict() or {}) for snapshot in snapshots)
            if len(snapshots) < PAGE:
                return
            last = snapshots[-1]

    def quarantined(self, since: float) -> list[KeptEvent]:
        # One equality filter (an automatic index); the time is filtered here.
        query = self._db.events.where(filter=self._db.equal("quarantined", True))
        with mapped():
            found = [kept(snapshot.to_dict() or {}) for snapshot in query.stream()]
        return sorted((event for event in found if event.at >= since), key=lambda event: event.at)

    def count_quarantined(self) -> int:
        query: Any = self._db.events.where(filter=self._db.equal("quarantined", True))
        with mapped():
            return int(query.count().get()[0][0].value)


def kept(document: Mapping[str, Any]) -> KeptEvent:
    return KeptEvent(
        str(document["event_id"]),
        float(document["at"]),
        dict(document.get("attributes") or {}),
        str(document.get("data", "")),
        str(document.get("reason", "")),
    )
