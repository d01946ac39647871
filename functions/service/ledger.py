"""The ledger's ports: the durable record of runs and decisions, in four small ports.

- `RunStore`: runs by run key, every move a compare-and-set.
- `RunQueue`: runs held back, coalescing batches' members, and join windows.
- `DecisionLog`: the event → decision → run trail, and the events kept for replay.
- `Quotas`: limit places, switches and high-water marks.

One `Ledger` adapter is all four (`adapters.sqlite.ledger.SqliteLedger`,
`adapters.firestore.ledger.FirestoreLedger`), each port a module of its own inside it, so that a
claim and the records around it share one database; `tests/support/fakes.py` has the recording
fakes, and `tests/contract/` one suite per port that runs on all three.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Protocol

from functions.service.records import (
    NO_RIDERS,
    Claim,
    DecisionRecord,
    KeptEvent,
    NewRun,
    Outcome,
    Reading,
    Riders,
    RunRecord,
    SettleHead,
    SettleWindow,
)
from functions.service.windows import JoinState, JoinStatus, Part, Terms
from pipelines.backend import RunState


class RunStore(Protocol):
    """Runs by run key, and their moves through the states (every move a compare-and-set)."""

    def read(
        self, now: float, run_keys: Collection[str], marks: Collection[str] = (), flags: Collection[str] = ()
    ) -> Reading:
        """The runs of `run_keys` that exist, the marks and the flags, in one round trip (what a
        delivery reads before deciding, `guards.gather`). `now`: the caller's clock, which the
        reading's `at` is unless the ledger keeps its own (Firestore: the server's)."""
        ...

    def claim(self, run: NewRun, now: float, lease: float, also: Riders = NO_RIDERS) -> Claim:
        """Create the run CLAIMED if absent (WON); otherwise decide by `records.claim_rule`.
        `also` is written in the same commit when the claim is WON, and not at all otherwise
        (the caller writes it with its decision)."""
        ...

    def mark_submitted(
        self,
        run_key: str,
        attempt: int,
        run_id: str,
        now: float,
        also: Riders = NO_RIDERS,
        version: object = None,
    ) -> bool:
        """Record the backend's run id, only for the claim holder (`attempt` matches); `also` is
        written in the same commit, whether or not the run moved (the trail says what was done).
        `version`: the claim's (`Claim.version`), to compare-and-set without a read."""
        ...

    def release(self, run_key: str, attempt: int) -> None:
        """Give up a claim after a transient failure, so the retry can take over at once."""
        ...

    def finish(
        self,
        run_key: str,
        state: RunState,
        details: Mapping[str, object],
        now: float,
        only_from: RunState | None = None,
        decision: DecisionRecord | None = None,
        *,
        also: Riders = NO_RIDERS,
        publish_lease: float = 0.0,
    ) -> RunRecord | None:
        """Move a run to a terminal state: the run as it now is, or None if it was terminal
        already (absorbing), or is not in `only_from` when that is given (e.g. only a run still
        QUEUED: not one being started). In the same commit: `decision` only if the run moved,
        `also` whatever happened, and with `publish_lease` > 0 the right to publish its result
        (as `begin_publish` takes it) for that long, if it moved."""
        ...

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        """Take the right to publish a terminal, unpublished run's result (one publisher at a time)."""
        ...

    def mark_published(self, run_key: str, now: float, also: Riders = NO_RIDERS) -> None:
        """Record the result published (the first time counts); `also` in the same commit."""
        ...

    def get(self, run_key: str) -> RunRecord | None: ...

    def runs(
        self,
        *,
        route: str | None = None,
        state: RunState | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[RunRecord]:
        """Runs by creation time, oldest first (`newest_first`: the other way), at most `limit` read."""
        ...

    def unfinished(self) -> list[RunRecord]:
        """Runs that are SUBMITTED (the backend has them) but not terminal yet."""
        ...

    def stale_claims(self, now: float) -> list[RunRecord]:
        """Runs still CLAIMED whose lease has run out (on the ledger's clock)."""
        ...

    def unpublished(self) -> list[RunRecord]:
        """Terminal runs whose result is not published yet."""
        ...

    def summary(self, routes: Collection[str]) -> dict[tuple[str, RunState], int]:
        """How many runs each of `routes` has in each state, and those of every other route
        (removed from routes.yaml) under `records.OTHER_ROUTES`; states with none left out.
        Counted, never read (Firestore: an aggregation query per route and state, and one per
        state for every route)."""
        ...


class RunQueue(Protocol):
    """Runs held back by a limit, the pause or a coalescing window, batches' members, and the
    windows of join routes (the parts that arrived, per correlation key)."""

    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        """Move a claimed run (only its holder: `attempt` matches) to the queue."""
        ...

    def queued(self, now: float) -> list[RunRecord]:
        """QUEUED runs that may start now (`not_before` has passed), oldest first."""
        ...

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        """Claim a QUEUED run to start it (WON, attempt + 1); otherwise what `claim` would say."""
        ...

    def join_batch(
        self, run: NewRun, not_before: float, member: str, identity: str, now: float
    ) -> tuple[str, bool] | None:
        """Put one object into the coalescing batch `run` (QUEUED, created if absent, starting
        not before `not_before`): the run key of the batch that holds it, and whether this call
        added it.

        Membership is per route, across every batch of it: an `identity` (the object and its
        generation) that some batch of `run.route` holds already stays there (that batch's key,
        False). None: `run` is no longer QUEUED (its window's run has been taken), so the object
        was not added; the caller opens a batch of its own. One atomic step.
        """
        ...

    def settle(
        self, run: NewRun, window: SettleWindow, member: str, identity: str, now: float
    ) -> SettleHead | str:
        """Put one item (an object, a message) into the settle batch of its run key `run.run_key`
        (`records.settle_rule`): that batch's head after it. A new batch is a QUEUED run like
        `run` under the head's run key; a joined one starts later (`not_before` = the head's
        `due`). An `identity` some batch of `run.route` holds already (a redelivery) stays there:
        that batch's run key. One atomic step.
        """
        ...

    def settling(self, route: str, key: str) -> SettleHead | None:
        """The latest settle batch of `route`'s run key `key`, if it ever had one."""
        ...

    def add_members(self, run: NewRun, members: Sequence[str], now: float) -> None:
        """Store a batch run's objects (`gs://` URIs) apart from its document, where a manifest's
        (up to 100,000) would not fit: idempotent, in as many commits as the store needs."""
        ...

    def members(self, run_key: str) -> list[str]:
        """A batch run's objects (their `gs://` URIs), sorted, each once."""
        ...

    def arrive(self, route: str, key: str, part: str, arrival: Part, terms: Terms, now: float) -> JoinState:
        """Record one part of the join route `route` for correlation key `key` (`terms`: what
        the route asks of its windows), by `windows.arrive_rule`: the key's window after it.
        Concurrent arrivals all answer the same window: one commit order of its arrivals, which
        `windows.fold` reads alike for each."""
        ...

    def joins(
        self, *, status: JoinStatus | None = None, route: str | None = None, key: str | None = None
    ) -> list[JoinState]:
        """Join windows (of one status, route, key), newest first. A read."""
        ...

    def expire(self, route: str, key: str, opened: float, closed_before: float) -> bool:
        """Move an OPEN window that closed (`expires`) before `closed_before` to EXPIRED; False if
        it was not OPEN (completed meanwhile, or expired by another reconciler)."""
        ...


class DecisionLog(Protocol):
    """The event → decision → run trail that `kfp-trigger explain` prints."""

    def record(self, decision: DecisionRecord) -> None: ...

    def write(self, also: Riders) -> None:
        """Write riders on their own, in one commit (a decision with the event kept, say)."""
        ...

    def trail(self, identifier: str) -> list[DecisionRecord]:
        """Every decision for an event id, event key or run key, oldest first."""
        ...

    def count_decisions(self, outcome: Outcome) -> int:
        """How many decisions had this outcome (e.g. how many events were quarantined)."""
        ...

    def recent(
        self, since: float, *, before: float | None = None, route: str | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        """Decisions recorded at or after `since` and before `before` (about `route` only, if
        given), newest first, at most `limit`: pages, each `before` its predecessor's last."""
        ...

    def find(self, prefix: str, limit: int = 100) -> list[DecisionRecord]:
        """Decisions whose event key or run key starts with `prefix` (`bucket/name` finds an
        object's events), newest first; at most `limit` (past that, which ones is the ledger's
        pick: Firestore takes them in key order)."""
        ...

    def keep(self, event: KeptEvent) -> None:
        """Keep an event to replay it (the latest keep of an event id wins; `Riders.kept` is the
        same write riding on another commit)."""
        ...

    def kept(self, event_id: str) -> KeptEvent | None: ...

    def kept_since(self, since: float) -> Iterator[KeptEvent]:
        """Every kept event kept at or after `since`, oldest first, read a page at a time."""
        ...

    def quarantined(self, since: float) -> list[KeptEvent]:
        """The kept events whose last decision was quarantine, kept at or after `since`, oldest first."""
        ...

    def count_quarantined(self) -> int:
        """How many kept events are quarantined now (their last decision): each event once,
        however often it was replayed, and none a replay let through."""
        ...


class Quotas(Protocol):
    """What must hold across instances: limit places, switches, high-water marks."""

    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        """Take one of `limit` places in `scope` for `holder`; True if held (also if held before)."""
        ...

    def let_go(self, scope: str, holder: str) -> None:
        """Give `holder`'s place in `scope` back."""
        ...

    def flag(self, name: str) -> bool: ...

    def set_flag(self, name: str, on: bool) -> None: ...

    def raise_mark(self, key: str, value: int, now: float) -> int:
        """Raise the high-water mark `key` to at least `value`; the mark after (≥ value). `now`
        stamps it (retention: a mark not raised for a while can go)."""
        ...

    def mark(self, key: str) -> int:
        """The high-water mark `key` (0 if never raised). A read: `simulate` writes nothing."""
        ...

    def holders(self, scope: str) -> list[str]:
        """Who holds the places of `scope`, sorted. A read."""
        ...


class Ledger(RunStore, RunQueue, DecisionLog, Quotas, Protocol):
    """One durable store that is all four ports: what the adapters are (`SqliteLedger`,
    `FirestoreLedger`), so that a claim and the records around it share one database."""
