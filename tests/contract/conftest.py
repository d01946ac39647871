"""Fixtures for the contract suites: every ledger port on every ledger.

Each suite runs on the in-memory fakes (tests/support/fakes.py), SQLite (a file) and Firestore
(the emulator), so the fakes the unit tests use cannot drift from the adapters. `clock` is the
ledger's clock: virtual where the ledger compares the `now` it is given (memory, SQLite), so
leases run out without waiting; real on Firestore, which compares leases on its server clock.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from functions.bootstrap import ledger_from
from functions.service.ledger import Ledger
from tests.conftest import PROJECT
from tests.support.fakes import MemoryLedger


class Time:
    def __init__(self, real: bool) -> None:
        self.real = real
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def wait(self, seconds: float) -> None:
        if self.real:
            time.sleep(seconds)
        else:
            self.offset += seconds


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger other processes can open too."""
    if request.param == "firestore":
        request.getfixturevalue("firestore_emulator")
        return f"firestore://{PROJECT}/runs-{uuid.uuid4().hex[:12]}"
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture(params=["memory", "sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
def ledger_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ledger(ledger_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if ledger_kind == "memory":
        return MemoryLedger()
    if ledger_kind == "firestore":
        request.getfixturevalue("firestore_emulator")
        return ledger_from(f"firestore://{PROJECT}/runs-{uuid.uuid4().hex[:12]}")
    return ledger_from(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


@pytest.fixture
def ledger_clock(ledger_kind: str) -> Time:
    return Time(real=ledger_kind == "firestore")
