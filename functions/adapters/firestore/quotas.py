"""The Firestore `Quotas`: limit places (place i of a scope is a document created if absent),
switches (flags) and high-water marks (an atomic max)."""

from __future__ import annotations

from typing import Any

from functions.adapters.firestore.database import Part, document_id, mapped


class FirestoreQuotas(Part):
    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        from google.api_core import exceptions

        places = self._db.places
        with mapped():
            if self._holding(scope, holder):
                return True
            counted: Any = places.where(filter=self._db.equal("scope", scope)).count()
            held = int(counted.get()[0][0].value)
            if held >= limit:
                return False
            prefix = document_id(scope)
            ended = scope.startswith(("active:", "key:"))  # given back when the run ends
            expiry = {} if ended else self._db.expiry()
            for slot in [*range(held, limit), *range(held)]:  # the free places are most likely past `held`
                try:
                    places.document(f"{prefix}-{slot}").create(
                        {"scope": scope, "holder": holder, "at": now} | expiry
                    )
                    return True
                except exceptions.AlreadyExists:
                    continue
        return False

    def let_go(self, scope: str, holder: str) -> None:
        with mapped():
            for snapshot in self._holding(scope, holder):
                snapshot.reference.delete()

    def _holding(self, scope: str, holder: str) -> list[Any]:
        query = self._db.places.where(filter=self._db.equal("scope", scope))
        return list(query.where(filter=self._db.equal("holder", holder)).stream())

    def holders(self, scope: str) -> list[str]:
        query = self._db.places.where(filter=self._db.equal("scope", scope))
        with mapped():
            return sorted(str((snapshot.to_dict() or {})["holder"]) for snapshot in query.stream())

    def flag(self, name: str) -> bool:
        with mapped():
            snapshot = self._db.flags.document(name).get()
        return bool(snapshot.exists and (snapshot.to_dict() or {}).get("value"))

    def set_flag(self, name: str, on: bool) -> None:
        with mapped():
            self._db.flags.document(name).set({"value": on})

    def raise_mark(self, key: str, value: int, now: float) -> int:
        ref = self._db.marks.document(document_id(key))
        with mapped():
            maximum = {"key": key, "value": self._db.firestore.Maximum(value)}
            ref.set(maximum | self._db.expiry(), merge=True)  # an atomic max
            return int((ref.get().to_dict() or {})["value"])

    def mark(self, key: str) -> int:
        with mapped():
            snapshot = self._db.marks.document(document_id(key)).get()
        return int((snapshot.to_dict() or {}).get("value", 0)) if snapshot.exists else 0
