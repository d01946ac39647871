"""Fixtures shared by every tier. The environment is isolated for every test."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.router import Router
from functions import bootstrap
from functions.service.ports import Services, ledger_ports
from functions.settings import Settings
from pipelines import catalog as routes_catalog
from pipelines.catalog import LoadedRoutes
from tests.support import ROUTES
from tests.support.fakes import MemoryLedger, RecordingBackend, RecordingSink

EMULATORS = ("pubsub_emulator", "firestore_emulator", "storage_emulator")


def pytest_configure(config: pytest.Config) -> None:
    """Stop on SIGTERM the way Ctrl-C does, so session fixtures (the emulators) are torn down."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses an emulator `emulator` (the fast tier leaves them out)."""
    for item in items:
        if set(EMULATORS) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("KFP_TRIGGER_"):
            monkeypatch.delenv(name)
    bootstrap.reset()
    yield
    bootstrap.reset()


@pytest.fixture(scope="session")
def test_routes(tmp_path_factory: pytest.TempPathFactory) -> LoadedRoutes:
    """tests/data/routes.yaml, loaded once with its echo pipeline compiled."""
    return routes_catalog.load(ROUTES, tmp_path_factory.mktemp("packages"))


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def backend() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def services(tmp_path: Path, test_routes: LoadedRoutes, backend: RecordingBackend, clock: Clock) -> Services:
    """The service wired as in production, with recording fakes for the ledger, backend and sinks."""
    settings = Settings(routes=ROUTES, state_dir=tmp_path, reconcile_grace_seconds=0)
    return Services(
        settings=settings,
        router=Router(test_routes.rules),
        catalog=test_routes.catalog,
        **ledger_ports(MemoryLedger()),
        backends={"local": backend},
        results=RecordingSink(),
        quarantine=RecordingSink(),
        clock=clock,
    )


PROJECT = "kfp-trigger-test"


def _emulated(name: str, variable: str, factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.support.emulators import emulator

    with emulator(name, factory.mktemp(name) / "emulator.log") as host, pytest.MonkeyPatch.context() as patch:
        patch.setenv(variable, f"http://{host}" if name == "storage" else host)
        patch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        yield host


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _emulated("pubsub", "PUBSUB_EMULATOR_HOST", tmp_path_factory)


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _emulated("firestore", "FIRESTORE_EMULATOR_HOST", tmp_path_factory)


@pytest.fixture(scope="session")
def storage_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _emulated("storage", "STORAGE_EMULATOR_HOST", tmp_path_factory)
