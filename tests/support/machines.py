"""What the model-based tests (tests/unit/test_model*.py) share: the platform's faults."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from events.envelope import parse_http
from events.errors import TransientError
from events.router import Router
from functions.adapters.sqlite.ledger import SqliteLedger
from functions.service import intake
from functions.service.crashpoints import POINTS
from functions.service.ports import Services, ledger_ports
from functions.service.records import Handled
from functions.settings import Settings
from pipelines import catalog
from tests.support.fakes import RecordingBackend, RecordingSink
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


class RoutedPlatform(FaultyPlatform):
    """A `FaultyPlatform` serving the routes.yaml text `ROUTES` (a subclass sets it) on a SQLite
    ledger in a scratch folder, with simulated time (`now`); `deliver` calls `handle_event` and
    remembers what was acknowledged."""

    ROUTES = ""
    LEASE = 60.0
    GRACE = 60.0

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.folder = Path(tempfile.mkdtemp(prefix=f"kfp-trigger-{cls.__name__}-"))
        (cls.folder / "routes.yaml").write_text(cls.ROUTES)
        cls.routes = catalog.load(cls.folder / "routes.yaml", cls.folder / "packages")

    def __init__(self) -> None:
        super().__init__()
        self.scratch = tempfile.TemporaryDirectory()
        self.now = 1_800_000_000.0
        self.services = Services(
            settings=Settings(
                routes=self.folder / "routes.yaml",
                state_dir=Path(self.scratch.name),
                claim_lease_seconds=self.LEASE,
                reconcile_grace_seconds=0,
                join_grace_seconds=self.GRACE,
            ),
            router=Router(self.routes.rules),
            catalog=self.routes.catalog,
            **ledger_ports(SqliteLedger(Path(self.scratch.name) / "ledger.sqlite3")),
            backends={"local": self.engine},
            results=RecordingSink(),
            quarantine=RecordingSink(),
            clock=lambda: self.now,
            crash=self.crash,
        )
        self.acked: set[str] = set()  # event ids answered 2xx

    def teardown(self) -> None:
        self.scratch.cleanup()

    def deliver(self, event_id: str, delivery: tuple[dict[str, str], bytes]) -> int | None:
        headers, body = delivery
        status = self.call(lambda: intake.handle(self.services, *parse_http(headers, body), body))
        if status is not None and status < 300:
            self.acked.add(event_id)
        return status
