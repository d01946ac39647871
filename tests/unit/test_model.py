"""A model-based test of the trigger loop (hypothesis stateful testing).

Hypothesis drives the platform around the services: deliver an event, deliver it again, crash at
a named point, fail the backend (before or after it started the run), let runs end, send
duplicate and out-of-order completion notices, fail a result publish, reconcile, let time pass.
After every step the invariants of research/reliability.md hold:

- I1 an acknowledged event is accounted for: recorded at once (a run, or a queue entry), and once
  faults stop and the reconciler has run, started on the engine;
- I2 at most one run on the engine per run key;
- I3 every published result of a run carries the same event id; a finished, published run has one;
- I4 a terminal state never changes, even for a completer acting on what it read earlier.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from events.envelope import parse_http
from events.errors import TransientError
from events.router import Router
from functions.adapters.sqlite.ledger import SqliteLedger
from functions.service import completion, intake, reconcile, runs
from functions.service.ports import Services, ledger_ports
from functions.service.records import Handled, RunRecord
from functions.settings import Settings
from pipelines import catalog
from pipelines.backend import RunState
from tests.support import ROUTES, completion_event, machine_settings, storage_event
from tests.support.fakes import RecordingSink
from tests.support.machines import FaultyPlatform

pytestmark = pytest.mark.slow  # 300 hypothesis state-machine examples (about 10 s)

LEASE = 60.0
EVENTS = 4
ROUTE = "some-bucket-folder"


def run_key(number: int) -> str:
    return f"{ROUTE}/some-bucket/folder/model-{number}.csv#1"


class FlakySink(RecordingSink):
    """A results sink whose next publish fails, when told to."""

    fail_next: bool = False

    def publish(self, document: object) -> None:  # type: ignore[override]
        if self.fail_next:
            self.fail_next = False
            raise TransientError("results topic unavailable")
        super().publish(document)  # type: ignore[arg-type]


class TriggerLoop(FaultyPlatform):
    routes = catalog.load(ROUTES, Path(tempfile.mkdtemp(prefix="kfp-trigger-model-")))

    def __init__(self) -> None:
        super().__init__()
        self.scratch = tempfile.TemporaryDirectory()
        self.now = 1_800_000_000.0
        self.results = FlakySink()
        self.services = Services(
            settings=Settings(
                routes=ROUTES,
                state_dir=Path(self.scratch.name),
                claim_lease_seconds=LEASE,
                reconcile_grace_seconds=0,
            ),
            router=Router(self.routes.rules),
            catalog=self.routes.catalog,
            **ledger_ports(SqliteLedger(Path(self.scratch.name) / "ledger.sqlite3")),
            backends={"local": self.engine},
            results=self.results,
            quarantine=RecordingSink(),
            clock=lambda: self.now,
            crash=self.crash,
        )
        self.acked: set[int] = set()
        self.terminal: dict[str, RunState] = {}
        self.snapshots: list[RunRecord | None] = []

    def teardown(self) -> None:
        self.scratch.cleanup()

    # ---- the platform ----------------------------------------------------------------------

    @rule(number=st.integers(0, EVENTS - 1))
    def deliver(self, number: int) -> None:
        headers, body = storage_event("some-bucket", f"folder/model-{number}.csv", event_id=f"e-{number}")
        status = self.call(lambda: intake.handle(self.services, *parse_http(headers, body), body))
        if status is not None and status < 300:
            self.acked.add(number)

    @rule()
    def fail_the_next_publish(self) -> None:
        self.results.fail_next = True

    @rule(seconds=st.sampled_from([1.0, LEASE / 2, LEASE + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: any(not state.terminal for state in self.engine.states.values()))
    @rule(data=st.data(), state=st.sampled_from(["SUCCEEDED", "FAILED", "CANCELED"]))
    def a_run_ends(self, data: st.DataObject, state: str) -> None:
        running = sorted(run_id for run_id, s in self.engine.states.items() if not s.terminal)
        run_id = data.draw(st.sampled_from(running))
        self.engine.states[run_id] = RunState(state)

    @precondition(lambda self: bool(self.engine.submitted))
    @rule(data=st.data(), state=st.sampled_from(["RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "COMPLETE"]))
    def a_completion_notice(self, data: st.DataObject, state: str) -> None:
        """Any notice for any started run: on time, repeated, early, or stale after the end."""
        key = data.draw(st.sampled_from(sorted({s.run_key for s in self.engine.submitted})))
        headers, body = completion_event(key, state, message_id=f"n-{data.draw(st.integers(0, 3))}")
        self.call(lambda: completion.handle(self.services, *parse_http(headers, body), body))

    @precondition(lambda self: bool(self.engine.submitted))
    @rule(data=st.data())
    def a_completer_reads_a_run(self, data: st.DataObject) -> None:
        """Another instance reads a run now and acts on it later (see `the_slow_completer_acts`)."""
        key = data.draw(st.sampled_from(sorted({s.run_key for s in self.engine.submitted})))
        self.snapshots.append(self.services.store.get(key))

    @precondition(lambda self: bool(self.snapshots))
    @rule()
    def the_slow_completer_acts(self) -> None:
        record = self.snapshots.pop(0)
        if record is not None:
            self.call(lambda: Handled((), {"state": runs.complete(self.services, record)}))

    @rule()
    def reconcile(self) -> None:
        self.call(lambda: reconcile.reconcile_pass(self.services))

    # ---- invariants ------------------------------------------------------------------------

    @invariant()
    def at_most_one_run_per_key(self) -> None:  # I2
        keys = [submission.run_key for submission in self.engine.submitted]
        assert len(keys) == len(set(keys))

    @invariant()
    def acknowledged_events_are_recorded(self) -> None:  # I1, at every step
        for number in self.acked:
            assert self.services.store.get(run_key(number)) is not None

    @rule()
    def everything_settles(self) -> None:  # I1: with no more faults, every acknowledged event runs
        self.engine.fail_with = self.engine.succeed_but_raise = None
        self.results.fail_next, self.crash_at = False, None
        for _ in range(2):
            self.now += LEASE + 1
            completion.reconcile(self.services)
        started = {submission.run_key for submission in self.engine.submitted}
        for number in self.acked:
            record = self.services.store.get(run_key(number))
            assert record is not None
            assert run_key(number) in started or record.state is RunState.FAILED
            assert record.state in (RunState.SUBMITTED, RunState.FAILED) or record.state.terminal

    @invariant()
    def terminal_states_are_absorbing(self) -> None:  # I4
        for record in self.services.store.runs():
            if record.run_key in self.terminal:
                assert record.state is self.terminal[record.run_key]
            elif record.state.terminal:
                self.terminal[record.run_key] = record.state

    @invariant()
    def results_are_one_logical_result_per_run(self) -> None:  # I3
        ids: dict[str, set[str]] = {}
        for document in self.results.published:
            data = document["data"]
            assert isinstance(data, dict)
            ids.setdefault(str(data["run_key"]), set()).add(str(document["id"]))
        assert all(len(found) == 1 for found in ids.values())
        for record in self.services.store.runs():
            if record.published_at is not None:
                assert record.run_key in ids


TriggerLoop.TestCase.settings = machine_settings(300)
test_the_trigger_loop_keeps_its_invariants = pytest.mark.filterwarnings("ignore")(TriggerLoop.TestCase)
