"""The Firestore join windows: the parts that arrived per route and correlation key.

Lock-free where deliveries race: a part is a document created if absent, so twenty concurrent
deliveries of the last part take no locks (as a claim does). Only opening a window is a
transaction, among the arrivals that find none open. The key's latest window is one document; a
window a newer one replaces moves to a document of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from functions.adapters.firestore.database import EXPIRE_AT, TRANSACTION_ATTEMPTS, Part, document_id, mapped
from functions.service.records import (
    JoinState,
    JoinStatus,
    completed,
    current_window,
    parts_from_json,
    parts_json,
)
from functions.service.records import (
    Part as Arrival,
)


class FirestoreJoins(Part):
    def arrive(
        self,
        route: str,
        key: str,
        part: str,
        arrival: Arrival,
        names: tuple[str, ...],
        within: float,
        now: float,
    ) -> JoinState:
        from google.api_core import exceptions

        if (held := self._holding_event(route, key, arrival.event_id, names)) is not None:
            return held  # a redelivery, however late: the window that holds it (`arrive_rule`)
        latest_ref = self._db.joins.document(document_id(f"{route}\n{key}"))
        with mapped():
            snapshot = latest_ref.get()
        latest = window(snapshot.to_dict() or {}) if snapshot.exists else None
        opened = current_window(latest, route, key, within, now)
        if opened is not latest:
            opened = self._open(latest_ref, route, key, names, within, now)
        identity = window_id(opened)
        document: dict[str, Any] = {"window": identity, "part": part, "route": route, "key": key}
        document |= {"opened": opened.opened, "expires": opened.expires, EXPIRE_AT: self._expires_at(opened)}
        with mapped():
            try:
                self._db.join_parts.document(document_id(f"{identity}\n{part}")).create(
                    document | parts_json({"part": arrival})["part"]
                )
                added = True
            except exceptions.AlreadyExists:
                added = False
        parts = self._parts_of(identity)
        status = completed(parts, names)
        if status is JoinStatus.COMPLETE and opened.status is JoinStatus.OPEN:
            self._mark_complete(route, key, opened.opened)
        return replace(opened, parts=parts, status=status, added=added)

    def _holding_event(self, route: str, key: str, event_id: str, names: tuple[str, ...]) -> JoinState | None:
        """The window whose parts include the event `event_id`, if one does."""
        equal = self._db.equal
        query = (
            self._db.join_parts.where(filter=equal("route", route))
            .where(filter=equal("key", key))
            .where(filter=equal("event_id", event_id))
        )
        with mapped():
            found = [snapshot.to_dict() or {} for snapshot in query.stream()]
            if not found:
                return None
            identity = str(found[0]["window"])
            stored = self._db.joins.where(filter=equal("window", identity)).stream()
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

        def open_window(transaction: Any) -> JoinState:
            snapshot = latest_ref.get(transaction=transaction)
            latest = window(snapshot.to_dict() or {}) if snapshot.exists else None
            opened = current_window(latest, route, key, within, now)
            if opened is latest:
                return opened
            if latest is not None:  # the replaced window keeps a document of its own
                transaction.set(self._db.joins.document(window_id(latest)), snapshot.to_dict() or {})
            transaction.set(latest_ref, self._window_document(opened, names))
            return opened

        return self._db.commit(open_window)

    def _mark_complete(self, route: str, key: str, opened: float) -> None:
        """Record the window COMPLETE in its documents (the key's latest, and its own once
        replaced), each write conditioned on the document as read (no lock)."""
        from google.api_core import exceptions

        documents = (document_id(f"{route}\n{key}"), window_id_of(route, key, opened))
        for ref in (self._db.joins.document(name) for name in documents):
            with mapped():
                for _ in range(TRANSACTION_ATTEMPTS):
                    snapshot = ref.get()
                    current = snapshot.to_dict() or {}
                    if current.get("opened") != opened or current["status"] != JoinStatus.OPEN:
                        break  # not this window's document, or marked already
                    try:
                        option = self._db.client.write_option(last_update_time=snapshot.update_time)
                        ref.update({"status": JoinStatus.COMPLETE.value}, option=option)
                        break
                    except exceptions.FailedPrecondition:
                        continue  # changed since read: look again

    def _parts_of(self, identity: str) -> dict[str, Arrival]:
        query = self._db.join_parts.where(filter=self._db.equal("window", identity))
        with mapped():
            stored = {str(d["part"]): d for d in (s.to_dict() or {} for s in query.stream())}
        return parts_from_json(stored)

    def _expires_at(self, opened: JoinState) -> datetime:
        return datetime.fromtimestamp(opened.expires, UTC) + self._db.retention

    def _window_document(self, opened: JoinState, names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "window": window_id(opened),
            "names": list(names),
            "route": opened.route,
            "key": opened.key,
            "opened": opened.opened,
            "expires": opened.expires,
            "status": opened.status.value,
            EXPIRE_AT: self._expires_at(opened),
        }

    def joins(
        self, *, status: JoinStatus | None = None, route: str | None = None, key: str | None = None
    ) -> list[JoinState]:
        query: Any = self._db.joins
        for name, value in (("status", status), ("route", route), ("key", key)):
            if value is not None:
                query = query.where(filter=self._db.equal(name, str(value)))
        with mapped():
            found = [window(snapshot.to_dict() or {}) for snapshot in query.stream()]
        windows = {window_id(each): each for each in found}  # the latest is also its own: once
        return sorted(
            (replace(each, parts=self._parts_of(identity)) for identity, each in windows.items()),
            key=lambda each: each.opened,
            reverse=True,
        )

    def expire(self, route: str, key: str, opened: float, closed_before: float) -> bool:
        identity = window_id_of(route, key, opened)
        query = self._db.joins.where(filter=self._db.equal("window", identity))
        with mapped():
            refs = [snapshot.reference for snapshot in query.stream()]
        return any([self._expire_one(ref, identity, closed_before) for ref in refs])

    def _expire_one(self, ref: Any, identity: str, closed_before: float) -> bool:
        parts = self._db.join_parts.where(filter=self._db.equal("window", identity))

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

        return self._db.commit(expire)


def window(document: Mapping[str, Any]) -> JoinState:
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


def window_id(opened: JoinState) -> str:
    return window_id_of(opened.route, opened.key, opened.opened)
