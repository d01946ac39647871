"""The `Ledger` port: the durable record of every run and every decision.

A run is keyed by its run key. Its state only moves forward:

    CLAIMED ──▶ SUBMITTED ──▶ SUCCEEDED | FAILED | CANCELED | SKIPPED ──▶ (result published)
     │ ▲ │ ▲
     │ │ └─┘ an expired claim (the claimant died) is taken over by a later delivery
     ▼ │
    QUEUED   held back by a limit, a pause or a coalescing window; taken when it may start

`claim` is the atomic create-if-absent that makes one delivery the submitter. Terminal states
are absorbing: a late or repeated completion never moves a run back. The decisions table keeps
the event → decision → run trail that `kfp-trigger explain` prints.

Adapters: `SqliteLedger` (functions/sqlite_ledger.py), `FirestoreLedger` (functions/firestore_ledger.py);
one contract suite (tests/contract/test_ledger.py) runs on both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class State(StrEnum):
    QUEUED = "QUEUED"
    CLAIMED = "CLAIMED"
    SUBMITTED = "SUBMITTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    SKIPPED = "SKIPPED"

    @property
    def terminal(self) -> bool:
        return self not in (State.QUEUED, State.CLAIMED, State.SUBMITTED)


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


@dataclass(frozen=True, slots=True)
class RunRecord(NewRun):
    """A run as the ledger knows it: what was asked for, and how far it got."""

    state: State
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


class Ledger(Protocol):
    def claim(self, run: NewRun, now: float, lease: float) -> Claim: ...

    def mark_submitted(self, run_key: str, attempt: int, run_id: str, now: float) -> bool:
        """Record the backend's run id, only for the claim holder (`attempt` matches)."""
        ...

    def release(self, run_key: str, attempt: int) -> None:
        """Give up a claim after a transient failure, so the retry can take over at once."""
        ...

    def finish(self, run_key: str, state: State, details: Mapping[str, object], now: float) -> bool:
        """Move a run to a terminal state; False if it was terminal already (absorbing)."""
        ...

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        """Take the right to publish a terminal, unpublished run's result (one publisher at a time)."""
        ...

    def mark_published(self, run_key: str, now: float) -> None: ...

    def get(self, run_key: str) -> RunRecord | None: ...

    def runs(
        self, *, route: str | None = None, state: State | None = None, limit: int = 1000
    ) -> list[RunRecord]: ...

    def unfinished(self) -> list[RunRecord]:
        """Runs that are SUBMITTED (the backend has them) but not terminal yet."""
        ...

    def stale_claims(self, now: float) -> list[RunRecord]:
        """Runs still CLAIMED whose lease has run out (on the ledger's clock)."""
        ...

    def unpublished(self) -> list[RunRecord]:
        """Terminal runs whose result is not published yet."""
        ...

    def record(self, decision: DecisionRecord) -> None: ...

    # ---- the queue: runs held back by a limit, a pause or a coalescing window -----------------

    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        """Move a claimed run (only its holder: `attempt` matches) to the queue."""
        ...

    def queued(self, now: float) -> list[RunRecord]:
        """QUEUED runs that may start now (`not_before` has passed), oldest first."""
        ...

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        """Claim a QUEUED run to start it (WON, attempt + 1); otherwise what `claim` would say."""
        ...

    def open_batch(self, run: NewRun, not_before: float, now: float) -> RunRecord:
        """The QUEUED run that collects a coalescing window's events, created if absent."""
        ...

    def add_member(self, run_key: str, member: str) -> None:
        """Add an object to a batch run's list (a set: adding twice keeps one)."""
        ...

    def members(self, run_key: str) -> list[str]:
        """A batch run's objects, sorted."""
        ...

    # ---- limits that must hold across instances ----------------------------------------------

    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        """Take one of `limit` places in `scope` for `holder`; True if held (also if held before)."""
        ...

    def let_go(self, scope: str, holder: str) -> None:
        """Give `holder`'s place in `scope` back."""
        ...

    def flag(self, name: str) -> bool: ...

    def set_flag(self, name: str, on: bool) -> None: ...

    def raise_mark(self, key: str, value: int) -> int:
        """Raise the high-water mark `key` to at least `value`; the mark after (≥ value)."""
        ...

    def trail(self, identifier: str) -> list[DecisionRecord]:
        """Every decision for an event id, event key or run key, oldest first."""
        ...

    def summary(self) -> dict[tuple[str, State], int]:
        """How many runs each route has in each state."""
        ...

    def count_decisions(self, outcome: Outcome) -> int:
        """How many decisions had this outcome (e.g. how many events were quarantined)."""
        ...
