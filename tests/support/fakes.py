"""Recording fakes for the ports. They record what they were given; tests assert on that.

The ledger's fakes (`FakeRunStore`, `FakeRunQueue`, `FakeDecisionLog`, `FakeQuotas`, and
`MemoryLedger`, all four at once) keep the same contract as the real ledgers: the contract
suites in tests/contract/ run on them too, so a fake cannot drift from the adapters.
"""

from __future__ import annotations

import datetime
import functools
import json
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
from google.auth import _helpers, credentials

from events.errors import Gone
from functions.service.alerts import ALERT_TYPE
from functions.service.records import (
    NO_RIDERS,
    Claim,
    ClaimOutcome,
    DecisionRecord,
    KeptEvent,
    NewRun,
    Outcome,
    Reading,
    Riders,
    RunRecord,
    SettleHead,
    SettleWindow,
    claim_rule,
    others_folded,
    settle_rule,
)
from functions.service.results import RESULT_TYPE
from functions.service.windows import JoinState, JoinStatus, Part, Terms, arrive_rule
from pipelines.backend import RunState, RunStatus, Submission
from pipelines.engines import Engine


@dataclass
class RecordingBackend:
    """A backend that starts nothing: `submitted` lists every submission it accepted.

    `fail_with` is raised by the next submit (then cleared); `succeed_but_raise` records the
    submission and *then* raises, as when a response is lost after the run was created. Runs in
    `lost` were deleted on the engine: looking them up fails as KFP's 404 does (`Gone`,
    pipelines/kfp/backend.py `mapped`).
    """

    submitted: list[Submission] = field(default_factory=list)
    states: dict[str, RunState] = field(default_factory=dict)
    fail_with: Exception | None = None
    succeed_but_raise: Exception | None = None
    metrics: dict[str, float] = field(default_factory=lambda: {"accuracy": 0.9})
    outputs: dict[str, str] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)
    cancels: list[str] = field(default_factory=list)  # run ids, in the order cancels were asked
    reports: Engine = field(default_factory=lambda: Engine("recording"))  # what engine() answers

    def submit(self, submission: Submission) -> str:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        self.submitted.append(submission)
        run_id = f"fake-{len(self.submitted)}"
        self.states[run_id] = RunState.RUNNING
        if self.succeed_but_raise is not None:
            error, self.succeed_but_raise = self.succeed_but_raise, None
            raise error
        return run_id

    def status(self, run_id: str) -> RunStatus:
        if run_id in self.lost:
            raise Gone(f"KFP get run: HTTP 404: run {run_id} not found")
        state = self.states[run_id]
        metrics = self.metrics if state is RunState.SUCCEEDED else {}
        outputs = self.outputs or {"model": f"mem://{run_id}/model"}
        return RunStatus(run_id, state, metrics=metrics, outputs=outputs)

    def find(self, run_key: str) -> str | None:
        for number, submission in enumerate(self.submitted, start=1):
            if submission.run_key == run_key:
                return f"fake-{number}"
        return None

    def engine(self) -> Engine:
        return self.reports

    def cancel(self, run_id: str) -> None:
        self.cancels.append(run_id)
        if not self.states[run_id].terminal:  # a run that ended first stays as it ended
            self.states[run_id] = RunState.CANCELED


@dataclass
class RecordingSink:
    """Records what it is given; every result CloudEvent must validate against the published
    schema (deploy/schemas/), so no test can publish what the product was not promised."""

    published: list[Mapping[str, object]] = field(default_factory=list)

    def publish(self, document: Mapping[str, object]) -> None:
        if (committed := SCHEMAS.get(str(document.get("type")))) is not None:
            validator(committed).validate(document["data"])
        self.published.append(document)


def alerts_of(services: Any) -> list[dict[str, object]]:
    """The data of the alerts the services' one (recording) alert sink was given, in order."""
    (sink,) = services.alerts
    assert isinstance(sink, RecordingSink)
    return [dict(d["data"]) for d in sink.published if d["type"] == ALERT_TYPE]  # type: ignore[call-overload]


SCHEMAS = {RESULT_TYPE: "run-finished.v2.schema.json", ALERT_TYPE: "alert.v1.schema.json"}


@functools.cache
def validator(name: str) -> Any:
    """The validator of the committed schema deploy/schemas/`name`, checked once."""
    schema = schema_file(name)
    found = jsonschema.validators.validator_for(schema)
    found.check_schema(schema)
    return found(schema)


@functools.cache
def schema_file(name: str) -> dict[str, object]:
    path = Path(__file__).resolve().parents[2] / "deploy" / "schemas" / name
    schema: dict[str, object] = json.loads(path.read_text())
    return schema


class FakeRunStore:
    """An in-memory `RunStore` that keeps the contract (tests/contract/test_run_store.py runs on
    it too); `runs_by_key` is what it holds. Leases are compared with the `now` it is given."""

    def __init__(self) -> None:
        self.runs_by_key: dict[str, RunRecord] = {}
        self._lock = threading.Lock()
        self._publish_lease: dict[str, float] = {}

    def _put(
        self, run: NewRun, state: RunState, lease_until: float, now: float, not_before: float = 0.0
    ) -> None:
        fields = {name: getattr(run, name) for name in NewRun.__dataclass_fields__}
        self.runs_by_key[run.run_key] = RunRecord(
            **fields | {"params": dict(run.params)},
            state=state,
            attempt=1,
            run_id=None,
            created_at=now,
            updated_at=now,
            lease_until=lease_until,
            not_before=not_before,
        )

    def _change(self, run_key: str, **values: object) -> None:
        self.runs_by_key[run_key] = replace(self.runs_by_key[run_key], **values)  # type: ignore[arg-type]

    def _take_over(self, record: RunRecord, now: float, lease: float, takes: RunState) -> Claim:
        decided = claim_rule(record, now, takes)
        if decided is not None:
            return decided
        attempt = record.attempt + 1
        self._change(
            record.run_key, state=RunState.CLAIMED, attempt=attempt, lease_until=now + lease, updated_at=now
        )
        return Claim(ClaimOutcome.WON, attempt, record)

    def _holder(self, run_key: str, attempt: int) -> RunRecord | None:
        record = self.runs_by_key.get(run_key)
        return record if record and record.state is RunState.CLAIMED and record.attempt == attempt else None

    def read(
        self, now: float, run_keys: Collection[str], marks: Collection[str] = (), flags: Collection[str] = ()
    ) -> Reading:
        quotas = self if isinstance(self, FakeQuotas) else FakeQuotas()
        return Reading(
            runs={key: self.runs_by_key[key] for key in run_keys if key in self.runs_by_key},
            marks={key: quotas.mark(key) for key in marks},
            flags={name: quotas.flag(name) for name in flags},
            at=now,
        )

    def claim(self, run: NewRun, now: float, lease: float, also: Riders = NO_RIDERS) -> Claim:
        with self._lock:
            record = self.runs_by_key.get(run.run_key)
            if record is None:
                self._put(run, RunState.CLAIMED, now + lease, now)
                claim = Claim(ClaimOutcome.WON, attempt=1)
            else:
                claim = self._take_over(record, now, lease, RunState.CLAIMED)
            if claim.outcome is ClaimOutcome.WON:
                self._ride(also)
            return claim

    def mark_submitted(
        self,
        run_key: str,
        attempt: int,
        run_id: str,
        now: float,
        also: Riders = NO_RIDERS,
        version: object = None,
    ) -> bool:
        with self._lock:
            self._ride(also)
            if self._holder(run_key, attempt) is None:
                return False
            self._change(run_key, state=RunState.SUBMITTED, run_id=run_id, submitted_at=now, updated_at=now)
            return True

    def release(self, run_key: str, attempt: int) -> None:
        with self._lock:
            if self._holder(run_key, attempt) is not None:
                self._change(run_key, lease_until=0.0)

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
        if not state.terminal:
            raise ValueError(f"{state} is not a terminal state")
        with self._lock:
            self._ride(also)
            record = self.runs_by_key.get(run_key)
            if record is None or record.state.terminal or only_from not in (None, record.state):
                return None
            self._change(run_key, state=state, details=dict(details), finished_at=now, updated_at=now)
            if publish_lease > 0:
                self._publish_lease[run_key] = now + publish_lease
            if decision is not None:
                self._ride(Riders(decisions=(decision,)))
            return self.runs_by_key[run_key]

    def _ride(self, also: Riders) -> None:
        """Riders written with a state change (a `MemoryLedger` keeps them; a bare store has
        nowhere to)."""
        if isinstance(self, FakeDecisionLog):
            self.write(also)

    def begin_publish(self, run_key: str, now: float, lease: float) -> RunRecord | None:
        with self._lock:
            record = self.runs_by_key.get(run_key)
            if record is None or not record.state.terminal or record.published_at is not None:
                return None
            if self._publish_lease.get(run_key, 0.0) > now:
                return None
            self._publish_lease[run_key] = now + lease
            return record

    def mark_published(self, run_key: str, now: float, also: Riders = NO_RIDERS) -> None:
        with self._lock:
            self._ride(also)
            record = self.runs_by_key.get(run_key)
            if record is not None and record.published_at is None:
                self._change(run_key, published_at=now, updated_at=now)

    def get(self, run_key: str) -> RunRecord | None:
        return self.runs_by_key.get(run_key)

    def _sorted(self, keep: Callable[[RunRecord], bool], by: str = "created_at") -> list[RunRecord]:
        return sorted((r for r in self.runs_by_key.values() if keep(r)), key=lambda r: getattr(r, by) or 0.0)

    def runs(
        self,
        *,
        route: str | None = None,
        state: RunState | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[RunRecord]:
        chosen = self._sorted(lambda r: route in (None, r.route) and state in (None, r.state))
        return (chosen[::-1] if newest_first else chosen)[:limit]

    def unfinished(self) -> list[RunRecord]:
        return self._sorted(lambda r: r.state is RunState.SUBMITTED)

    def stale_claims(self, now: float) -> list[RunRecord]:
        return self._sorted(lambda r: r.state is RunState.CLAIMED and r.lease_until <= now)

    def unpublished(self) -> list[RunRecord]:
        return self._sorted(lambda r: r.state.terminal and r.published_at is None, by="finished_at")

    def summary(self, routes: Collection[str]) -> dict[tuple[str, RunState], int]:
        return others_folded(Counter((r.route, r.state) for r in self.runs_by_key.values()), routes)


class FakeRunQueue(FakeRunStore):
    """An in-memory `RunQueue` over a `FakeRunStore`'s runs (a queued run is a run)."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_of: dict[tuple[str, str], tuple[str, str]] = {}  # (route, identity) → (run key, member)
        self.windows: dict[tuple[str, str, float], JoinState] = {}  # (route, key, opened) → window
        self.heads: dict[tuple[str, str], SettleHead] = {}  # (route, run key) → its latest settle batch

    def queue(self, run_key: str, attempt: int, reason: str, now: float) -> bool:
        with self._lock:
            if self._holder(run_key, attempt) is None:
                return False
            self._change(
                run_key, state=RunState.QUEUED, details={"queued": reason}, lease_until=0.0, updated_at=now
            )
            return True

    def queued(self, now: float) -> list[RunRecord]:
        return self._sorted(lambda r: r.state is RunState.QUEUED and r.not_before <= now)

    def take(self, run_key: str, now: float, lease: float) -> Claim:
        with self._lock:
            record = self.runs_by_key.get(run_key)
            if record is None:
                raise KeyError(run_key)
            return self._take_over(record, now, lease, RunState.QUEUED)

    def join_batch(
        self, run: NewRun, not_before: float, member: str, identity: str, now: float
    ) -> tuple[str, bool] | None:
        with self._lock:
            if (held := self.batch_of.get((run.route, identity))) is not None:
                return held[0], False
            current = self.runs_by_key.get(run.run_key)
            if current is None:
                self._put(run, RunState.QUEUED, 0.0, now, not_before)
            elif current.state is not RunState.QUEUED:
                return None
            self.batch_of[run.route, identity] = (run.run_key, member)
            return run.run_key, True

    def settle(
        self, run: NewRun, window: SettleWindow, member: str, identity: str, now: float
    ) -> SettleHead | str:
        with self._lock:
            if (held := self.batch_of.get((run.route, identity))) is not None:
                return held[0]
            head = self.heads.get((run.route, run.run_key))
            current = self.runs_by_key.get(head.run_key) if head is not None else None
            joined = settle_rule(head, current.state if current else None, run.run_key, window, now)
            details = {"queued": joined.story()}
            if head is None or joined.number != head.number:
                self._put(replace(run, run_key=joined.run_key), RunState.QUEUED, 0.0, now, joined.due)
            self._change(joined.run_key, not_before=joined.due, details=details, updated_at=now)
            self.heads[run.route, run.run_key] = joined
            self.batch_of[run.route, identity] = (joined.run_key, member)
            return joined

    def settling(self, route: str, key: str) -> SettleHead | None:
        return self.heads.get((route, key))

    def add_members(self, run: NewRun, members: Sequence[str], now: float) -> None:
        for member in members:
            self.batch_of[run.route, f"{run.run_key}\n{member}"] = (run.run_key, member)

    def members(self, run_key: str) -> list[str]:
        return sorted({member for key, member in self.batch_of.values() if key == run_key})

    def arrive(self, route: str, key: str, part: str, arrival: Part, terms: Terms, now: float) -> JoinState:
        with self._lock:
            windows = self.joins(route=route, key=key)
            window = arrive_rule(windows, route, key, part, arrival, terms, now)
            self.windows[(route, key, window.opened)] = replace(window, added=False, late_number=0)
            return window

    def joins(
        self, *, status: JoinStatus | None = None, route: str | None = None, key: str | None = None
    ) -> list[JoinState]:
        found = [
            window
            for window in self.windows.values()
            if status in (None, window.status) and route in (None, window.route) and key in (None, window.key)
        ]
        return sorted(found, key=lambda window: window.opened, reverse=True)

    def expire(self, route: str, key: str, opened: float, closed_before: float) -> bool:
        with self._lock:
            window = self.windows.get((route, key, opened))
            if window is None or window.status is not JoinStatus.OPEN or window.expires > closed_before:
                return False
            self.windows[(route, key, opened)] = replace(window, status=JoinStatus.EXPIRED)
            return True


@dataclass
class FakeDecisionLog:
    """A recording `DecisionLog`: `recorded` lists every decision, oldest first."""

    recorded: list[DecisionRecord] = field(default_factory=list)
    events: dict[str, KeptEvent] = field(default_factory=dict)

    def record(self, decision: DecisionRecord) -> None:
        self.write(Riders(decisions=(decision,)))

    def write(self, also: Riders) -> None:
        """Riders, written (the marks only where there are quotas: a `MemoryLedger`)."""
        if also.kept is not None:
            self.events[also.kept.event_id] = also.kept
        if isinstance(self, FakeQuotas):
            for key, value, at in also.marks:
                self.raise_mark(key, value, at)
        self.recorded.extend(also.decisions)

    def keep(self, event: KeptEvent) -> None:
        self.write(Riders(kept=event))

    def kept(self, event_id: str) -> KeptEvent | None:
        return self.events.get(event_id)

    def kept_since(self, since: float) -> Iterator[KeptEvent]:
        return iter(
            sorted((e for e in self.events.values() if e.at >= since), key=lambda e: (e.at, e.event_id))
        )

    def quarantined(self, since: float) -> list[KeptEvent]:
        return sorted((e for e in self.events.values() if e.reason and e.at >= since), key=lambda e: e.at)

    def count_quarantined(self) -> int:
        return sum(1 for event in self.events.values() if event.reason)

    def trail(self, identifier: str) -> list[DecisionRecord]:
        found = [d for d in self.recorded if identifier in (d.event_id, d.event_key, d.run_key)]
        return sorted(found, key=lambda d: d.at)  # stable: equal times keep their order

    def count_decisions(self, outcome: Outcome) -> int:
        return sum(d.outcome is outcome for d in self.recorded)

    def recent(
        self, since: float, *, before: float | None = None, route: str | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        end = float("inf") if before is None else before
        found = [d for d in self.recorded if since <= d.at < end and route in (None, d.route)]
        return sorted(reversed(found), key=lambda d: d.at, reverse=True)[:limit]  # ties: newest first

    def find(self, prefix: str, limit: int = 100) -> list[DecisionRecord]:
        found = [d for d in self.recorded if d.event_key.startswith(prefix) or d.run_key.startswith(prefix)]
        return sorted(reversed(found), key=lambda d: d.at, reverse=True)[:limit]


@dataclass
class FakeQuotas:
    """An in-memory `Quotas`: `places` (scope → holders), `flags`, `marks`."""

    places: dict[str, set[str]] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)

    def hold(self, scope: str, limit: int, holder: str, now: float) -> bool:
        held = self.places.setdefault(scope, set())
        if holder in held:
            return True
        if len(held) >= limit:
            return False
        held.add(holder)
        return True

    def let_go(self, scope: str, holder: str) -> None:
        self.places.get(scope, set()).discard(holder)

    def flag(self, name: str) -> bool:
        return self.flags.get(name, False)

    def set_flag(self, name: str, on: bool) -> None:
        self.flags[name] = on

    def raise_mark(self, key: str, value: int, now: float) -> int:
        self.marks[key] = max(self.marks.get(key, value), value)
        return self.marks[key]

    def mark(self, key: str) -> int:
        return self.marks.get(key, 0)

    def holders(self, scope: str) -> list[str]:
        return sorted(self.places.get(scope, ()))


class MemoryLedger(FakeRunQueue, FakeDecisionLog, FakeQuotas):
    """Every ledger port in memory, sharing one set of runs: what `SqliteLedger` is, without a file."""

    def __init__(self) -> None:
        FakeRunQueue.__init__(self)
        FakeDecisionLog.__init__(self)
        FakeQuotas.__init__(self)


class StubCredentials(credentials.Credentials):  # type: ignore[misc]
    """google-auth credentials whose tokens live `lifetimes[n]` seconds each."""

    def __init__(self, *lifetimes: float) -> None:
        super().__init__()
        self.lifetimes = list(lifetimes)
        self.refreshed = 0

    def refresh(self, request: object) -> None:
        self.refreshed += 1
        self.token = f"token-{self.refreshed}"
        lifetime = datetime.timedelta(seconds=self.lifetimes.pop(0))
        self.expiry = _helpers.utcnow() + lifetime
