"""What the ledger records: runs (by run key) and decisions (per event), and what use cases answer.

A run's state only moves forward (`pipelines.backend.RunState` is the one state enum):

    CLAIMED ──▶ SUBMITTED ──▶ SUCCEEDED | FAILED | CANCELED | SKIPPED ──▶ (result published)
     │ ▲ │ ▲
     │ │ └─┘ an expired claim (the claimant died) is taken over by a later delivery
     ▼ │
    QUEUED   held back by a limit, a pause, a coalescing or settle window; taken when it may start

`claim` is the atomic create-if-absent that makes one delivery the submitter; `claim_rule` is
how every ledger decides an existing run key's claim. Terminal states are absorbing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

from pipelines.backend import RunState

# The states a run has in the ledger: PENDING and RUNNING are the engine's words only.
LEDGER_STATES = tuple(state for state in RunState if state not in (RunState.PENDING, RunState.RUNNING))


class ClaimOutcome(StrEnum):
    WON = "WON"  # this delivery submits (attempt > 1: it took over an expired claim)
    BUSY = "BUSY"  # another delivery holds a live claim: do not acknowledge yet
    DONE = "DONE"  # already submitted or finished: a duplicate, acknowledge


class Outcome(StrEnum):
    """What happened to one event (or one of its run requests), as recorded in the trail."""

    RUN = "run"
    DUPLICATE = "duplicate"
    BUSY = "busy"
    SKIPPED = "skipped"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    RETRY = "retry"
    COMPLETED = "completed"
    QUEUED = "queued"  # held back (a limit, a pause, a coalescing window): it starts later


@dataclass(frozen=True, slots=True)
class NewRun:
    run_key: str
    route: str
    pipeline: str
    version: str
    backend: str
    params: Mapping[str, object]
    event_id: str
    concurrency: str = field(default="", kw_only=True)  # its key under limits.concurrency, or ""
    trace: str = field(default="", kw_only=True)  # the W3C traceparent of the span that decided it, or ""
    partition: str = field(default="", kw_only=True)  # what the route's `partition` names, or ""
    fresh_key: str = field(default="", kw_only=True)  # what the route's `expect.per` names, or ""


@dataclass(frozen=True, slots=True)
class RunRecord(NewRun):
    """A run as the ledger knows it: what was asked for, and how far it got."""

    state: RunState
    attempt: int
    run_id: str | None
    created_at: float
    updated_at: float
    lease_until: float = 0.0
    submitted_at: float | None = None
    finished_at: float | None = None
    details: Mapping[str, object] = field(default_factory=dict)
    published_at: float | None = None
    not_before: float = 0.0  # a QUEUED run does not start before this (a coalescing window's end)


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    attempt: int = 0
    record: RunRecord | None = None
    retry_after: float = 0.0
    # WON: the ledger's version of the run as this claim left it (Firestore: its update time), so
    # that `mark_submitted` can compare-and-set without reading it again; None: none known.
    version: object = None


def claim_rule(record: RunRecord, now: float, takes: RunState = RunState.CLAIMED) -> Claim | None:
    """How a ledger answers a claim (`takes` CLAIMED) or a take (`takes` QUEUED) on an existing
    run: BUSY while another holder's claim is live, DONE if the run is past `takes`, or None:
    take it over (attempt + 1). `now` is the ledger's clock (Firestore: the server's)."""
    if record.state is RunState.CLAIMED and record.lease_until > now:
        return Claim(ClaimOutcome.BUSY, record.attempt, record, record.lease_until - now)
    if record.state is not takes:
        return Claim(ClaimOutcome.DONE, record.attempt, record)
    return None


def iso(timestamp: float | None) -> str | None:
    """A ledger time (Unix seconds) in RFC 3339, to the millisecond, in UTC."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A Cloud Storage object as its finalize event describes it."""

    name: str
    generation: int
    size: int
    updated: datetime | None = None
    content_type: str = ""


@dataclass(frozen=True, slots=True)
class SettleWindow:
    """`limits.settle`: a batch starts `quiet` after its last item, `max_wait` after its first
    at the latest, or once it holds `max_items`."""

    quiet: float
    max_wait: float
    max_items: int


@dataclass(frozen=True, slots=True)
class SettleHead:
    """A run key's latest settle batch: the key's `number`-th, `run_key` `<key>~settle-<number>`."""

    number: int
    run_key: str
    opened: float
    items: int
    due: float  # its run's `not_before`

    def story(self) -> str:
        """What a QUEUED batch's details say (`explain`, `status`)."""
        return f"settling until {iso(self.due)}: {self.items} item(s) since {iso(self.opened)}"


def settle_rule(
    head: SettleHead | None, state: RunState | None, key: str, window: SettleWindow, now: float
) -> SettleHead:
    """How a ledger adds one item to run key `key`'s settle batch, given its latest (`head`) and
    the state of that batch's run: into it while it is QUEUED and not full, its start put off to
    `quiet` after this item (never past `max_wait` after its first); else into a new batch,
    numbered next. A full batch is due at once. `now` is the ledger's clock."""
    if head is not None and state is RunState.QUEUED and head.items < window.max_items:
        joined = replace(head, items=head.items + 1, due=max(head.due, now + window.quiet))
    else:
        number = head.number + 1 if head is not None else 1
        joined = SettleHead(number, f"{key}~settle-{number}", now, 1, now + window.quiet)
    due = now if joined.items >= window.max_items else min(joined.due, joined.opened + window.max_wait)
    return replace(joined, due=due)


MAX_KEPT_DATA = 900_000  # characters of an event's data kept for replay (a Firestore document is 1 MiB)


@dataclass(frozen=True, slots=True)
class KeptEvent:
    """What is kept of an event delivered to `handle_event`, to replay it (`kfp-trigger replay`)."""

    event_id: str
    at: float
    attributes: Mapping[str, str]  # its CloudEvent attributes
    data: str  # its data as JSON text ("" when it was too large to keep)
    reason: str = ""  # why it was quarantined; "" for an event the routes took


def data_text(data: object) -> str:
    """An event's data as JSON text to keep ("" if it is not JSON, or too large to keep)."""
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return ""
    return text if len(text) <= MAX_KEPT_DATA else ""


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    at: float
    event_id: str
    event_key: str
    event_type: str
    outcome: Outcome
    route: str = ""
    reason: str = ""
    run_key: str = ""


@dataclass(frozen=True, slots=True)
class Handled:
    """What a use case did with one request: every outcome (the HTTP target answers for the most
    severe, by `functions.targets.STATUS`) and a small JSON body that never echoes the payload."""

    outcomes: tuple[Outcome, ...]
    body: Mapping[str, object]


OTHER_ROUTES = "(other routes)"  # `RunStore.summary`: runs of routes not in routes.yaml (any more)


def others_folded(
    counts: Mapping[tuple[str, RunState], int], routes: Collection[str]
) -> dict[tuple[str, RunState], int]:
    """Run counts by route and state, every route not in `routes` counted as OTHER_ROUTES, and
    states with none left out."""
    folded: dict[tuple[str, RunState], int] = {}
    for (route, state), count in counts.items():
        key = (route if route in routes else OTHER_ROUTES, state)
        folded[key] = folded.get(key, 0) + count
    return {key: count for key, count in folded.items() if count}


def prefix_end(prefix: str) -> str:
    """The end of the range of texts that start with `prefix` (a ledger's range query on
    an indexed key: `prefix <= key < prefix_end(prefix)`), in code-point and UTF-8 byte order."""
    return prefix + "\U0010ffff"


class MarkRaise(NamedTuple):
    """Raise the high-water mark `key` to at least `value` (`Quotas.raise_mark`), stamped `at`."""

    key: str
    value: int
    at: float


@dataclass(frozen=True, slots=True)
class Riders:
    """Writes that ride on a commit a delivery makes anyway, so that a delivery costs fewer round
    trips (issue 19): the event kept for replay, high-water marks to raise, and decisions. A
    ledger method that takes them writes them in its own commit (a batch or its transaction),
    all or nothing."""

    kept: KeptEvent | None = None
    marks: tuple[MarkRaise, ...] = ()
    decisions: tuple[DecisionRecord, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.kept or self.marks or self.decisions)

    def deciding(self, *decisions: DecisionRecord) -> Riders:
        """These riders and `decisions` too."""
        return replace(self, decisions=self.decisions + decisions)


NO_RIDERS = Riders()


@dataclass(frozen=True, slots=True)
class Reading:
    """What one read of the ledger found (`RunStore.read`): the runs that exist of the keys asked
    for, the marks (0: never raised) and flags asked for, and the ledger's clock at the read
    (Firestore: the server's), which `claim_rule` compares leases with."""

    runs: Mapping[str, RunRecord]
    marks: Mapping[str, int]
    flags: Mapping[str, bool]
    at: float
