"""What the ledger records: runs (by run key) and decisions (per event), and what use cases answer.

A run's state only moves forward (`pipelines.backend.RunState` is the one state enum):

    CLAIMED ──▶ SUBMITTED ──▶ SUCCEEDED | FAILED | CANCELED | SKIPPED ──▶ (result published)
     │ ▲ │ ▲
     │ │ └─┘ an expired claim (the claimant died) is taken over by a later delivery
     ▼ │
    QUEUED   held back by a limit, a pause or a coalescing window; taken when it may start

`claim` is the atomic create-if-absent that makes one delivery the submitter; `claim_rule` is
how every ledger decides an existing run key's claim. Terminal states are absorbing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

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


def claim_rule(record: RunRecord, now: float, takes: RunState = RunState.CLAIMED) -> Claim | None:
    """How a ledger answers a claim (`takes` CLAIMED) or a take (`takes` QUEUED) on an existing
    run: BUSY while another holder's claim is live, DONE if the run is past `takes`, or None:
    take it over (attempt + 1). `now` is the ledger's clock (Firestore: the server's)."""
    if record.state is RunState.CLAIMED and record.lease_until > now:
        return Claim(ClaimOutcome.BUSY, record.attempt, record, record.lease_until - now)
    if record.state is not takes:
        return Claim(ClaimOutcome.DONE, record.attempt, record)
    return None


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
