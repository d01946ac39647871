"""What the model-based tests (tests/unit/test_model*.py) share: the platform's faults."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from events.errors import TransientError
from functions.service.crashpoints import POINTS
from functions.service.records import Handled
from tests.support.fakes import RecordingBackend
from tests.support.faults import Crasher, answer


class FaultyPlatform(RuleBasedStateMachine):
    """The faults every model-based test drives (tests/unit/test_model*.py): the next call
    crashes at a chosen point (`crash_next_time_at`, through `crash`, the services' hook), the
    next submit fails before or after it started the run (`fail_the_next_submit`, on `engine`).
    A subclass builds its services with `crash=self.crash` and calls the targets with `call`."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = RecordingBackend()
        self.crash_at: str | None = None
        self.armed: str | None = None  # the crash point of the call in progress
        self.crash = Crasher(lambda point: point == self.armed)

    def call(self, target: Callable[[], Handled]) -> int | None:
        """The status the platform sees for one call, crashing where it was told to."""
        self.armed, self.crash_at = self.crash_at, None
        try:
            return answer(target)
        finally:
            self.armed = None

    @rule(point=st.sampled_from(POINTS))
    def crash_next_time_at(self, point: str) -> None:
        self.crash_at = point

    @rule(after_starting=st.booleans())
    def fail_the_next_submit(self, after_starting: bool) -> None:
        if after_starting:
            self.engine.succeed_but_raise = TransientError("response lost")
        else:
            self.engine.fail_with = TransientError("backend unavailable")
