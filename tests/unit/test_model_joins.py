"""A model-based test of joins and supersede (issue 16 item 4), as tests/unit/test_model.py is of
the trigger loop: hypothesis delivers the parts of two-part joins in every order, repeated, as
distinct events and as redeliveries, across window expiries; delivers newer events of a
supersede route racing the cancels and the runs' own ends; crashes at the named points, fails
the backend, lets time pass, reconciles. After every step:

- J1 a join window starts at most one run, and a run only once every part of its window arrived;
- J2 every acknowledged part is accounted for: a decision is recorded for its event;
- S1 a supersede key never has two runs active on the engine at once;
- S2 the engine is asked to cancel a run at most once;

and once faults stop and reconcile has run (`everything_settles`): no window is left OPEN past
its window, every complete window's run has started, and each tenant's newest run started and
was not superseded, at most one of its runs has not ended, and every superseded run ended
CANCELED (S3).
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from functions.service import completion, reconcile
from functions.service.records import iso
from functions.service.windows import JoinStatus
from pipelines.backend import RunState
from tests.support import machine_settings, message_event, storage_event
from tests.support.machines import RoutedPlatform

pytestmark = pytest.mark.slow  # 200 hypothesis state-machine examples

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: ready
    when:
      join:
        key: "{k}"
        within: 1h
        parts:
          a: {pubsub: {topic: model-events}, key: "{data.k}"}
          b: {storage: {bucket: model-bucket, object: "{k}/_SUCCESS"}}
    run: {pipeline: echo, params: {message: "{parts.a.data.k}"}}
  - name: latest
    when: {storage: {bucket: newest-bucket, object: "{tenant}/{file}"}}
    run: {pipeline: echo, params: {message: "{tenant}"}}
    limits: {concurrency: {key: "{tenant}", on_newer: supersede}}
"""
LEASE = 60.0
GRACE = 60.0
KEYS = ("k0", "k1")
TENANTS = ("t0", "t1")


class JoinsAndSupersede(RoutedPlatform):
    ROUTES = ROUTES

    # ---- the platform ----------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), copy=st.integers(0, 2))
    def part_a(self, key: str, copy: int) -> None:
        event_id = f"a-{key}-{copy}"
        self.deliver(event_id, message_event("model-events", {"k": key}, event_id))

    @rule(key=st.sampled_from(KEYS), copy=st.integers(0, 2))
    def part_b(self, key: str, copy: int) -> None:
        event_id = f"b-{key}-{copy}"
        self.deliver(event_id, storage_event("model-bucket", f"{key}/_SUCCESS", event_id=event_id))

    @rule(tenant=st.sampled_from(TENANTS), number=st.integers(0, 5))
    def newer_data(self, tenant: str, number: int) -> None:
        event_id = f"n-{tenant}-{number}"
        self.deliver(event_id, storage_event("newest-bucket", f"{tenant}/f{number}.csv", event_id=event_id))

    @rule(seconds=st.sampled_from([1.0, LEASE + 1, 1800.0, 3600.0 + GRACE + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: any(not state.terminal for state in self.engine.states.values()))
    @rule(data=st.data(), state=st.sampled_from(["SUCCEEDED", "FAILED"]))
    def a_run_ends_on_its_own(self, data: st.DataObject, state: str) -> None:
        """Also between a cancel's request and its landing: the engine's word stands."""
        running = sorted(run_id for run_id, s in self.engine.states.items() if not s.terminal)
        self.engine.states[data.draw(st.sampled_from(running))] = RunState(state)

    @rule()
    def reconcile(self) -> None:
        self.call(lambda: reconcile.reconcile_pass(self.services))

    # ---- invariants ------------------------------------------------------------------------

    def window_run_keys(self) -> set[str]:
        """The run key of every complete window (the route's default: {route}/{key}@{join.opened})."""
        windows = self.services.queue.joins(route="ready", status=JoinStatus.COMPLETE)
        return {f"ready/{window.key}@{iso(window.opened)}" for window in windows}

    @invariant()
    def a_window_starts_at_most_one_run_and_only_when_complete(self) -> None:  # J1
        runs = self.services.store.runs(route="ready")
        assert {run.run_key for run in runs} <= self.window_run_keys()
        submitted = [s.run_key for s in self.engine.submitted if s.route == "ready"]
        assert len(submitted) == len(set(submitted))

    @invariant()
    def acknowledged_parts_are_accounted_for(self) -> None:  # J2
        for event_id in self.acked:
            assert self.services.decisions.trail(event_id), event_id

    @invariant()
    def a_key_never_has_two_runs_active(self) -> None:  # S1
        for tenant in TENANTS:
            active = [
                number
                for number, submission in enumerate(self.engine.submitted, start=1)
                if submission.route == "latest"
                and submission.params["message"] == tenant
                and not self.engine.states[f"fake-{number}"].terminal
            ]
            assert len(active) <= 1, (tenant, active)

    @invariant()
    def a_run_is_cancelled_at_most_once(self) -> None:  # S2
        assert len(self.engine.cancels) == len(set(self.engine.cancels))

    @rule()
    def everything_settles(self) -> None:
        self.engine.fail_with = self.engine.succeed_but_raise = None
        self.crash_at = None
        for _ in range(3):
            self.now += max(LEASE, GRACE) + 1
            completion.reconcile(self.services)
        open_windows = self.services.queue.joins(status=JoinStatus.OPEN)
        assert [w for w in open_windows if w.expires + GRACE < self.now] == [], "a window left open"
        started = {s.run_key for s in self.engine.submitted}
        for run_key in self.window_run_keys():
            record = self.services.store.get(run_key)
            assert record is not None, ("a complete window's run was never recorded", run_key)
            assert run_key in started or record.state is RunState.FAILED, record
        for tenant in TENANTS:  # S3: the newest run of a key wins, every older one has ended
            runs = [r for r in self.services.store.runs(route="latest") if r.concurrency == tenant]
            if not runs:
                continue
            newest = max(runs, key=lambda r: (r.created_at, r.run_key))
            assert "superseded_by" not in newest.details, newest
            assert newest.run_key in started, newest
            assert len([r for r in runs if not r.state.terminal]) <= 1, "one run of the key left at most"
            assert all(r.state is RunState.CANCELED for r in runs if "superseded_by" in r.details)


JoinsAndSupersede.TestCase.settings = machine_settings(200)
test_joins_and_supersede_keep_their_invariants = pytest.mark.filterwarnings("ignore")(
    JoinsAndSupersede.TestCase
)
