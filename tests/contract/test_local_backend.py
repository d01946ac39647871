"""The local backend against the real thing: kfp.local running compiled pipelines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipelines.backend import RunState, RunStatus, Submission
from pipelines.catalog import LoadedRoutes
from pipelines.local.backend import LocalBackend

pytestmark = pytest.mark.slow  # real kfp.local runs


def wait(backend: LocalBackend, run_id: str, timeout: float = 60) -> RunStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(run_id)
        if status.state.terminal:
            return status
        time.sleep(0.2)
    pytest.fail(f"{run_id} did not end within {timeout} s")


@pytest.fixture
def local(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "runs")


def test_a_run_succeeds_with_its_metrics_and_outputs(local: LocalBackend, test_routes: LoadedRoutes) -> None:
    submission = Submission("route/key#1", "route", test_routes.catalog["echo"], {"message": "hello"})
    run_id = local.submit(submission)
    assert local.find("route/key#1") == run_id
    assert local.find("another key") is None
    status = wait(local, run_id)
    assert status.state is RunState.SUCCEEDED
    assert status.metrics == {"length": 5.0}
    assert status.outputs["Output"].startswith(str(local.runs_dir / run_id / "outputs"))
    assert status.started_at is not None
    assert status.finished_at is not None
    request = (local.runs_dir / run_id / "request.json").read_text()
    assert '"run_key": "route/key#1"' in request, "the run key travels with the run (as a parameter too)"


def test_submitting_the_same_key_again_adopts_the_run(local: LocalBackend, test_routes: LoadedRoutes) -> None:
    submission = Submission("k", "route", test_routes.catalog["echo"], {"message": "x"})
    first = local.submit(submission)
    pid = (local.runs_dir / first / "pid").read_text()
    assert local.submit(submission) == first
    assert (local.runs_dir / first / "pid").read_text() == pid, "no second runner"
    wait(local, first)


def test_a_failing_pipeline_is_failed_with_its_error(local: LocalBackend, test_routes: LoadedRoutes) -> None:
    run_id = local.submit(Submission("k2", "route", test_routes.catalog["echo"], {"fail": True}))
    status = wait(local, run_id)
    assert status.state is RunState.FAILED
    assert status.error is not None
    assert "\x1b[" not in status.error, "ANSI colour codes are stripped"
