"""A model-based test of join expressions (issue 36): `require: any` and `{at_least: N}`, parts
kept `latest`, and `on_late: rerun | record`. Hypothesis delivers parts in every order, as new
content (a new message, a new object generation), as the same content under another event id,
and as redeliveries, across window expiries, with crashes, failed submits, time passing and
reconcile passes. After every step:

- E1 each run of a join route is its window's run or, with `on_late: rerun`, one of its late
  arrivals' runs (`…~late-N`, N at most the window's late arrivals), and no run key is
  submitted twice;
- E2 every acknowledged event has a recorded decision;

and once faults stop and reconcile has run: per key and window exactly 1 run, plus 1 per late
arrival with `on_late: rerun` — every one of them recorded, and started unless it failed; and a
part kept `latest` gives the run its last arrival before the window completed.
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

pytestmark = pytest.mark.slow  # hypothesis state-machine examples

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: anyone
    when:
      join:
        key: "{k}"
        within: 1h
        require: any
        on_late: rerun
        parts:
          a: {pubsub: {topic: anyone-events}, key: "{data.k}"}
          b: {storage: {bucket: anyone-bucket, object: "{k}/_SUCCESS"}, keep: latest}
    run: {pipeline: echo, params: {message: {from: parts.b.object.generation, default: "-"}}}
  - name: two
    when:
      join:
        key: "{k}"
        within: 1h
        require: {at_least: 2}
        on_late: rerun
        parts:
          a: {pubsub: {topic: two-events}, key: "{data.k}"}
          b: {storage: {bucket: two-bucket, object: "{k}/_SUCCESS"}, keep: latest}
          c: {storage: {bucket: two-c-bucket, object: "{k}/_DONE"}}
    run: {pipeline: echo}
  - name: every
    when:
      join:
        key: "{k}"
        within: 1h
        parts:
          a: {pubsub: {topic: every-events}, key: "{data.k}"}
          b: {storage: {bucket: every-bucket, object: "{k}/_SUCCESS"}, keep: latest}
    run: {pipeline: echo, params: {message: "{parts.b.object.generation}"}}
"""
ROUTE_NAMES = ("anyone", "two", "every")
RERUN = {"anyone", "two"}
LEASE = 60.0
GRACE = 60.0
KEYS = ("k0", "k1")


class JoinExpressions(RoutedPlatform):
    ROUTES = ROUTES

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, tuple[dict[str, str], bytes]] = {}  # event id → its delivery

    def deliver(self, event_id: str, delivery: tuple[dict[str, str], bytes]) -> int | None:
        self.sent[event_id] = delivery
        return super().deliver(event_id, delivery)

    # ---- the platform ----------------------------------------------------------------------

    @rule(route=st.sampled_from(ROUTE_NAMES), key=st.sampled_from(KEYS), copy=st.integers(0, 2))
    def a_message(self, route: str, key: str, copy: int) -> None:
        """Part a: each copy a message of its own (new content)."""
        event_id = f"{route}-a-{key}-{copy}"
        self.deliver(event_id, message_event(f"{route}-events", {"k": key}, event_id))

    @rule(
        route=st.sampled_from(ROUTE_NAMES),
        key=st.sampled_from(KEYS),
        generation=st.integers(1, 3),
        copy=st.integers(0, 1),
    )
    def an_object(self, route: str, key: str, generation: int, copy: int) -> None:
        """Part b: a generation is its content; two event ids of one generation are the same."""
        event_id = f"{route}-b-{key}-{generation}-{copy}"
        name = f"{key}/_SUCCESS"
        self.deliver(
            event_id, storage_event(f"{route}-bucket", name, generation=generation, event_id=event_id)
        )

    @rule(key=st.sampled_from(KEYS))
    def a_done_marker(self, key: str) -> None:
        """Part c of `two`."""
        event_id = f"two-c-{key}"
        self.deliver(event_id, storage_event("two-c-bucket", f"{key}/_DONE", event_id=event_id))

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def a_redelivery(self, data: st.DataObject) -> None:
        event_id = data.draw(st.sampled_from(sorted(self.sent)))
        self.deliver(event_id, self.sent[event_id])

    @rule(seconds=st.sampled_from([1.0, LEASE + 1, 1800.0, 3600.0 + GRACE + 1]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: any(not state.terminal for state in self.engine.states.values()))
    @rule(data=st.data())
    def a_run_ends(self, data: st.DataObject) -> None:
        running = sorted(run_id for run_id, s in self.engine.states.items() if not s.terminal)
        self.engine.states[data.draw(st.sampled_from(running))] = RunState.SUCCEEDED

    @rule()
    def reconcile(self) -> None:
        self.call(lambda: reconcile.reconcile_pass(self.services))

    # ---- invariants ------------------------------------------------------------------------

    def allowed(self, route: str) -> set[str]:
        """Each complete window's run key (the default, {route}/{key}@{join.opened}) and, with
        on_late: rerun, one per late arrival."""
        keys = set()
        for window in self.services.queue.joins(route=route, status=JoinStatus.COMPLETE):
            main = f"{route}/{window.key}@{iso(window.opened)}"
            late = len(window.late) if route in RERUN else 0
            keys |= {main, *(f"{main}~late-{number}" for number in range(1, late + 1))}
        return keys

    @invariant()
    def every_run_is_a_windows_or_a_late_arrivals(self) -> None:  # E1
        for route in ROUTE_NAMES:
            runs = {run.run_key for run in self.services.store.runs(route=route, limit=10_000)}
            assert runs <= self.allowed(route), (route, runs - self.allowed(route))
        submitted = [s.run_key for s in self.engine.submitted]
        assert len(submitted) == len(set(submitted)), "a run key submitted twice"

    @invariant()
    def acknowledged_events_are_accounted_for(self) -> None:  # E2
        for event_id in self.acked:
            assert self.services.decisions.trail(event_id), event_id

    @rule()
    def everything_settles(self) -> None:
        self.engine.fail_with = self.engine.succeed_but_raise = None
        self.crash_at = None
        for event_id in sorted(self.sent):  # the platform redelivers what was not acknowledged
            if event_id not in self.acked:
                self.deliver(event_id, self.sent[event_id])
        for _ in range(3):
            self.now += max(LEASE, GRACE) + 1
            completion.reconcile(self.services)
        started = {s.run_key for s in self.engine.submitted}
        for route in ROUTE_NAMES:
            runs = {run.run_key: run for run in self.services.store.runs(route=route, limit=10_000)}
            assert set(runs) == self.allowed(route), (route, self.allowed(route) ^ set(runs))
            for run_key, run in runs.items():
                assert run_key in started or run.state is RunState.FAILED, run
        for window in self.services.queue.joins(route="every", status=JoinStatus.COMPLETE):
            seen, generation = set(), ""  # keep: latest — b's last arrival before the window completed
            for arrived in window.arrivals:
                seen.add(arrived.part)
                if arrived.part == "b":
                    generation = arrived.event.event_key.rsplit("#", 1)[1]
                if seen == {"a", "b"}:
                    break
            run = self.services.store.get(f"every/{window.key}@{iso(window.opened)}")
            assert run is not None
            assert run.params["message"] == generation, (window.arrivals, run.params)


JoinExpressions.TestCase.settings = machine_settings(100)
test_join_expressions_keep_their_invariants = pytest.mark.filterwarnings("ignore")(JoinExpressions.TestCase)
