"""20 concurrent deliveries of one event, from separate processes, against the Firestore
ledger behind functions-framework: exactly one run, and every delivery eventually answered
2xx. Repeated 50 times, each round with a new object generation."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from functions.bootstrap import ledger_from
from functions.service.records import Outcome
from tests.conftest import PROJECT
from tests.support import env_for, free_port, functions_framework, server, storage_event

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

DELIVERIES = 20
ROUNDS = 50


def deliver(url: str, headers: dict[str, str], body: bytes, barrier) -> list[int]:
    """One delivery, redelivered as Pub/Sub does until it is acknowledged."""
    barrier.wait()
    statuses = []
    for _ in range(600):
        statuses.append(requests.post(url, data=body, headers=headers, timeout=60).status_code)
        if statuses[-1] < 300:
            break
        time.sleep(0.05)
    return statuses


@pytest.fixture
def endpoint(firestore_emulator: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    ledger = f"firestore://{PROJECT}/race-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = env_for(tmp_path, KFP_TRIGGER_LEDGER=ledger)
    with server(functions_framework("handle_event", port), env, port, tmp_path / "server.log") as url:
        yield url, ledger


def test_twenty_concurrent_deliveries_fifty_times(endpoint: tuple[str, str], tmp_path: Path) -> None:
    url, ledger_url = endpoint
    ledger = ledger_from(ledger_url)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(DELIVERIES) as pool:
        barrier = manager.Barrier(DELIVERIES)
        for round_number in range(1, ROUNDS + 1):
            headers, body = storage_event("some-bucket", "folder/race.csv", generation=round_number)
            answers = pool.starmap(deliver, [(url, headers, body, barrier)] * DELIVERIES)
            assert all(statuses[-1] == 200 for statuses in answers), (round_number, answers)
            run_key = f"some-bucket-folder/some-bucket/folder/race.csv#{round_number}"
            submitted = [d for d in ledger.trail(run_key) if d.outcome is Outcome.RUN]
            assert len(submitted) == 1, (round_number, submitted)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == ROUNDS
