"""Join windows as the ledgers record them: a window's arrivals, in the order the ledger took
them, and the one rule that reads the window from them (`fold`).

A window opens with the first arrival for its correlation key and closes `within` later. Its
arrivals are distinct events (a redelivery is answered by the window that holds the event) of
distinct content (an event whose `event_key` is that of an arrival of the same part is a
repeat). `fold` walks them in order: each part's first arrival counts — or, for a part kept
`latest`, its last one before the window completed; the window is COMPLETE once `needed` parts
have arrived (`require`: all, any, at least N), and every arrival after that is late. The N-th
late arrival of a window may start a run of its own, `…~late-N` (`on_late: rerun`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

MAX_ARRIVALS = 100  # the arrivals of one window that count: past them, an event is recorded only


class JoinStatus(StrEnum):
    OPEN = "open"  # waiting for parts until `expires`
    COMPLETE = "complete"  # enough parts arrived: its run is built (one run key per window)
    EXPIRED = "expired"  # the window closed with parts missing (recorded by reconcile)


@dataclass(frozen=True, slots=True)
class Part:
    """One arrival's event, and the fields the run reads."""

    event_id: str
    event_key: str
    at: float
    values: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Arrived:
    """An event that arrived as part `part` of a window."""

    part: str
    event: Part


@dataclass(frozen=True, slots=True)
class Terms:
    """What a join route asks of its windows."""

    names: tuple[str, ...]  # its parts
    within: float  # a window's length
    needed: int = 0  # parts that complete a window (0: every part)
    latest: frozenset[str] = frozenset()  # parts whose latest arrival counts (`keep: latest`)

    @property
    def required(self) -> int:
        return self.needed or len(self.names)


@dataclass(frozen=True, slots=True)
class JoinState:
    """One window of a join route for one correlation key, as `fold` reads it."""

    route: str
    key: str
    opened: float
    expires: float
    status: JoinStatus
    parts: Mapping[str, Part]  # the arrival of each part that counts (the run's)
    late: tuple[Arrived, ...] = ()  # the arrivals after the window completed, in order
    arrivals: tuple[Arrived, ...] = ()  # every arrival, in order
    added: bool = False  # the arrival that answered this was new to the window
    late_number: int = 0  # the answered arrival is the window's N-th late one (0: not late)

    def missing(self, names: tuple[str, ...]) -> list[str]:
        return [name for name in names if name not in self.parts]

    def counts(self, part: str, event_id: str) -> bool:
        """Whether this event is the arrival of `part` that the window's run gets."""
        return part in self.parts and self.parts[part].event_id == event_id


def fold(window: JoinState, arrivals: Sequence[Arrived], terms: Terms) -> JoinState:
    """`window` read from its arrivals: the parts that count, its status (an EXPIRED window
    stays so) and its late arrivals."""
    parts: dict[str, Part] = {}
    counted = list(arrivals[:MAX_ARRIVALS])
    late: tuple[Arrived, ...] = ()
    for index, arrived in enumerate(counted):
        if len(parts) >= terms.required:
            late = tuple(counted[index:])
            break
        if arrived.part not in parts or arrived.part in terms.latest:
            parts[arrived.part] = arrived.event
    status = window.status
    if status is JoinStatus.OPEN and len(parts) >= terms.required:
        status = JoinStatus.COMPLETE
    return replace(window, parts=parts, status=status, late=late, arrivals=tuple(arrivals))


def answering(window: JoinState, arrived: Arrived, added: bool) -> JoinState:
    """The window as the answer to `arrived` (new to it or not): which late arrival it is."""
    number = next((n for n, late in enumerate(window.late, 1) if late == arrived), 0)
    return replace(window, added=added, late_number=number)


def current_window(latest: JoinState | None, route: str, key: str, within: float, now: float) -> JoinState:
    """The window a part arriving at `now` belongs to, given the key's latest: that one while it
    is open (`now` before `expires`, not expired), else a new OPEN window opening `now`."""
    if latest is None or now >= latest.expires or latest.status is JoinStatus.EXPIRED:
        return JoinState(route, key, now, now + within, JoinStatus.OPEN, {})
    return latest


def same_content(window: JoinState, part: str, event: Part) -> Arrived | None:
    """The arrival of `part` in `window` with the content of `event` (the same `event_key`)."""
    return next((a for a in window.arrivals if a.part == part and a.event.event_key == event.event_key), None)


def arrive_rule(
    windows: list[JoinState], route: str, key: str, part: str, event: Part, terms: Terms, now: float
) -> JoinState:
    """How a ledger records one part's arrival, given the key's windows (newest first): an event
    a window holds already (a redelivery, however late) is answered by that window as it is,
    and so is an event with the content of an arrival of that part; any other is appended to
    the window open now (`current_window`) and the window folded again. A new window leaves an
    OPEN old one for reconcile to record expired. `now` is the ledger's clock."""
    for window in windows:
        held = next((a for a in window.arrivals if a.event.event_id == event.event_id), None)
        if held is not None:
            return answering(window, held, added=False)
    opened = current_window(windows[0] if windows else None, route, key, terms.within, now)
    if (same := same_content(opened, part, event)) is not None:
        return answering(opened, same, added=False)
    if len(opened.arrivals) >= MAX_ARRIVALS:  # recorded by its decision only
        return replace(opened, added=False)
    arrived = Arrived(part, event)
    return answering(fold(opened, (*opened.arrivals, arrived), terms), arrived, added=True)


def part_json(event: Part) -> dict[str, object]:
    """An arrival's event as the ledgers store it (JSON)."""
    return {
        "event_id": event.event_id,
        "event_key": event.event_key,
        "at": event.at,
        "values": dict(event.values),
    }


def part_from_json(stored: Mapping[str, object]) -> Part:
    """`part_json`'s inverse."""
    values, at = stored.get("values"), stored.get("at")
    return Part(
        str(stored.get("event_id", "")),
        str(stored.get("event_key", "")),
        float(at) if isinstance(at, int | float) else 0.0,
        dict(values) if isinstance(values, Mapping) else {},
    )


def arrivals_json(arrivals: Sequence[Arrived]) -> list[dict[str, object]]:
    return [{"part": arrived.part, **part_json(arrived.event)} for arrived in arrivals]


def arrivals_from_json(stored: Sequence[Mapping[str, object]]) -> tuple[Arrived, ...]:
    return tuple(Arrived(str(entry.get("part", "")), part_from_json(entry)) for entry in stored)


def parts_json(parts: Mapping[str, Part]) -> dict[str, dict[str, object]]:
    """A window's counted parts as the ledgers store them (JSON)."""
    return {name: part_json(event) for name, event in parts.items()}


def parts_from_json(stored: Mapping[str, Mapping[str, object]]) -> dict[str, Part]:
    """`parts_json`'s inverse."""
    return {name: part_from_json(event) for name, event in stored.items()}


def first_arrivals(parts: Mapping[str, Part]) -> tuple[Arrived, ...]:
    """The arrivals of a window recorded before arrivals were (its counted parts, by time)."""
    return tuple(sorted((Arrived(name, event) for name, event in parts.items()), key=lambda a: a.event.at))
