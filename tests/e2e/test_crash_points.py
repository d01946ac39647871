"""Crash at every named point of the main path, then redeliver and reconcile: one run, one
logical result, every event accounted for (research/reliability.md F3, F4, F8; invariants I1 to I3).

Each delivery and each reconcile pass runs in a process of its own that SIGKILLs itself at the
point (functions/service/crashpoints.py). Parametrised over every point by both ledgers (SQLite, the
Firestore emulator) by the local backend (kfp.local) and the KFP API fake.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from functions.bootstrap import ledger_from
from functions.service import crashpoints
from functions.service.records import Outcome
from functions.settings import Settings
from pipelines.backend import RunState
from tests.conftest import PROJECT
from tests.support import ROOT, ROUTES, env_for, serving, storage_event
from tests.support.kfp_fake import FakeKfp

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

LEASE = 1.0  # seconds: how long a dead claimant (or publisher) blocks the next one


@dataclass
class Engine:
    routes: Path
    env: dict[str, str]
    runs: Callable[[str], int]  # how many runs the engine has for a run key
    finish: Callable[[str], None]  # make (or wait until) the run for a run key end SUCCEEDED


@pytest.fixture(params=["local", "kfp"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "local":

        def finished(run_key: str) -> None:
            deadline = time.monotonic() + 120
            while not list((tmp_path / "runs").glob("*/status.json")):
                assert time.monotonic() < deadline, "the kfp.local run did not end"
                time.sleep(0.2)

        yield Engine(ROUTES, {}, lambda key: len(list((tmp_path / "runs").glob("*/started"))), finished)
        return
    fake = FakeKfp()
    routes = tmp_path / "routes-kfp.yaml"
    routes.write_text(
        ROUTES.read_text().replace(
            "source: tests.support.echo_pipeline:echo_pipeline",
            "source: tests.support.echo_pipeline:echo_pipeline\n    backend: kfp",
        )
    )

    def keyed(run_key: str) -> list[str]:
        return [run_id for run_id, run in fake.runs.items() if run["display_name"] == run_key]

    def succeed(run_key: str) -> None:
        for run_id in keyed(run_key):
            fake.states[run_id] = "SUCCEEDED"

    with serving(fake) as url:
        yield Engine(routes, {"KFP_TRIGGER_KFP_HOST": url}, lambda key: len(keyed(key)), succeed)


@pytest.fixture(params=["sqlite", pytest.param("firestore", marks=pytest.mark.emulator)])
def ledger_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "sqlite":
        return {}
    request.getfixturevalue("firestore_emulator")
    return {"KFP_TRIGGER_LEDGER": f"firestore://{PROJECT}/crash-{uuid.uuid4().hex[:8]}"}


def child(env: dict[str, str], *args: str, crash_at: str = "") -> subprocess.CompletedProcess[str]:
    crash = ["--crash-at", crash_at] if crash_at else []
    return subprocess.run(
        [sys.executable, "-m", "tests.support.crash_child", *crash, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def answered(process: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert process.returncode == 0, process.stderr[-3000:]
    answer: dict[str, object] = json.loads(process.stdout.splitlines()[-1])
    return answer


@pytest.mark.parametrize("point", crashpoints.POINTS)
def test_a_crash_loses_nothing_and_runs_nothing_twice(
    point: str, engine: Engine, ledger_env: dict[str, str], tmp_path: Path
) -> None:
    env = env_for(
        tmp_path,
        routes=engine.routes,
        KFP_TRIGGER_CLAIM_LEASE_SECONDS=str(LEASE),
        KFP_TRIGGER_RECONCILE_GRACE_SECONDS="0",
        **ledger_env,
        **engine.env,
    )
    headers, body = storage_event("some-bucket", f"folder/crash-{point}.csv", generation=7)
    delivery = ("deliver", json.dumps(headers), body.decode())

    crashing = point in crashpoints.DISPATCH_POINTS
    first = child(env, *delivery, crash_at=point if crashing else "")
    if crashing:
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    else:
        assert answered(first)["status"] == 200
    time.sleep(LEASE + 0.2)  # the dead claimant's lease runs out; the platform redelivers
    again = answered(child(env, *delivery))
    assert again["status"] == 200, again

    settings = Settings(
        state_dir=Path(env["KFP_TRIGGER_STATE_DIR"]), ledger=env.get("KFP_TRIGGER_LEDGER", "")
    )
    ledger = ledger_from(settings.ledger_url)
    (run,) = ledger.runs()
    engine.finish(run.run_key)

    crashing = point in crashpoints.COMPLETION_POINTS
    reconciled = child(env, "reconcile", crash_at=point if crashing else "")
    assert reconciled.returncode == (-signal.SIGKILL if crashing else 0), reconciled.stderr[-3000:]
    time.sleep(LEASE + 0.2)  # a dead publisher's hold runs out
    answered(child(env, "reconcile"))

    assert engine.runs(run.run_key) == 1, "exactly one run on the engine (I2)"
    final = ledger.get(run.run_key)
    assert final is not None
    assert (final.state, final.published_at is not None) == (RunState.SUCCEEDED, True)
    results = [
        json.loads(line)
        for line in (tmp_path / "results.jsonl").read_text().splitlines()
        if json.loads(line)["data"]["run_key"] == run.run_key
    ]
    assert results, "a result is published (I3)"
    assert len({result["id"] for result in results}) == 1, "a re-published result keeps its id (I3)"
    assert len(results) == (2 if point == crashpoints.AFTER_PUBLISH else 1)
    outcomes = {decision.outcome for decision in ledger.trail(run.event_id)}
    assert Outcome.RUN in outcomes, "the event is accounted for by its run (I1)"
