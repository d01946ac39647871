"""The Firestore join windows: the parts that arrived per route and correlation key.

Lock-free where deliveries race: an arrival is a document created if absent (one per part and
content), so twenty concurrent deliveries of the last part take no locks (as a claim does), and
the commit times order a window's arrivals alike for every reader, who reads the window from
them (`windows.fold`). Only opening a window is a transaction, among the arrivals that find none
open. The key's latest window is one document, holding what its route asked (`Terms`); a window
a newer one replaces moves to a document of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from functions.adapters.firestore.database import EXPIRE_AT, TRANSACTION_ATTEMPTS, Part, document_id, mapped
from functions.service.windows import (
    Arrived,
    JoinState,
    JoinStatus,
    Terms,
    answering,
    current_window,
    fold,
    part_from_json,
    part_json,
    same_content,
)
from functions.service.windows import Part as Arrival


class FirestoreJoins(Part):
    def arrive(
        self, route: str, key: str, part: str, arrival: Arrival, terms: Terms, now: float
    ) -> JoinState:
        from google.api_core import exceptions

        if (held := self._holding_event(route, key, arrival.event_id, terms)) is not None:
            return held  # a redelivery, however late: the window that holds it (`arrive_rule`)
        latest_ref = self._db.joins.document(document_id(f"{route}\n{key}"))
        with mapped():
            snapshot = latest_ref.get()
        latest = window(snapshot.to_dict() or {}) if snapshot.exists else None
        opened = current_window(latest, route, key, terms.within, now)
        if opened is not latest:
            opened = self._open(latest_ref, route, key, terms, now)
        identity = window_id(opened)
        document: dict[str, Any] = {"window": identity, "part": part, "route": route, "key": key}
        document |= {"opened": opened.opened, "expires": opened.expires, EXPIRE_AT: self._expires_at(opened)}
        # One document per part and content, created if absent: no lock, and the commit times
        # order the window's arrivals alike for every reader (`_arrivals_of`).
        name = document_id(f"{identity}\n{part}\n{arrival.event_key}")
        with mapped():
            try:
                self._db.join_parts.document(name).create(document | part_json(arrival))
                added = True
            except exceptions.AlreadyExists:
                added = False
        found = fold(opened, self._arrivals_of(identity), terms)
        if found.status is JoinStatus.COMPLETE and opened.status is JoinStatus.OPEN:
            self._mark_complete(route, key, opened.opened)
        mine = same_content(found, part, arrival)
        return answering(found, mine, added) if mine is not None else replace(found, added=False)

    def _holding_event(self, route: str, key: str, event_id: str, terms: Terms) -> JoinState | None:
        """The window whose arrivals include the event `event_id`, if one does."""
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
            stored = [
                s.to_dict() or {} for s in self._db.joins.where(filter=equal("window", identity)).stream()
            ]
        opened, expires = float(found[0]["opened"]), float(found[0]["expires"])
        status = JoinStatus(str(stored[0]["status"])) if stored else JoinStatus.OPEN
        held = fold(
            JoinState(route, key, opened, expires, status, {}),
            self._arrivals_of(identity),
            terms_of(stored[0], terms) if stored else terms,
        )
        mine = next(a for a in held.arrivals if a.event.event_id == event_id)
        return answering(held, mine, added=False)

    def _open(self, latest_ref: Any, route: str, key: str, terms: Terms, now: float) -> JoinState:
        """Open a new window for the key, unless another arrival just did (then that one)."""

        def open_window(transaction: Any) -> JoinState:
            snapshot = latest_ref.get(transaction=transaction)
            latest = window(snapshot.to_dict() or {}) if snapshot.exists else None
            opened = current_window(latest, route, key, terms.within, now)
            if opened is latest:
                return opened
            if latest is not None:  # the replaced window keeps a document of its own
                transaction.set(self._db.joins.document(window_id(latest)), snapshot.to_dict() or {})
            transaction.set(latest_ref, self._window_document(opened, terms))
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

    def _arrivals_of(self, identity: str) -> list[Arrived]:
        """A window's arrivals in the order the database committed them (ties: by document)."""
        query = self._db.join_parts.where(filter=self._db.equal("window", identity))
        with mapped():
            found = sorted(query.stream(), key=lambda snapshot: (snapshot.create_time, snapshot.id))
        return [Arrived(str((s.to_dict() or {})["part"]), part_from_json(s.to_dict() or {})) for s in found]

    def _expires_at(self, opened: JoinState) -> datetime:
        return datetime.fromtimestamp(opened.expires, UTC) + self._db.retention

    def _window_document(self, opened: JoinState, terms: Terms) -> dict[str, Any]:
        return {
            "window": window_id(opened),
            "names": list(terms.names),
            "needed": terms.required,
            "latest": sorted(terms.latest),
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
            found = [snapshot.to_dict() or {} for snapshot in query.stream()]
        windows = {window_id(window(each)): each for each in found}  # the latest is also its own: once
        return sorted(
            (
                fold(window(each), self._arrivals_of(identity), terms_of(each))
                for identity, each in windows.items()
            ),
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
            if len(arrived) >= terms_of(current).required:  # complete: its last arrival's mark lagged
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


def terms_of(document: Mapping[str, Any], given: Terms | None = None) -> Terms:
    """What a window document says its route asked when it opened (`given`'s length: it is
    not read back)."""
    names = tuple(str(name) for name in document.get("names", ()))
    return Terms(
        names,
        given.within if given else 0.0,
        int(document.get("needed", len(names))),
        frozenset(str(name) for name in document.get("latest", ())),
    )


def window_id_of(route: str, key: str, opened: float) -> str:
    """The document id naming one window of a key (its parts carry it)."""
    return document_id(f"{route}\n{key}\n{opened!r}")


def window_id(opened: JoinState) -> str:
    return window_id_of(opened.route, opened.key, opened.opened)
