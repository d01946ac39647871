"""`kfp-trigger partitions` and `backfill --reprocess` as a user runs them (issue 36): a matrix
of a route's partitions from the SQLite ledger, text and JSON, and the failed ones run again."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from functions.bootstrap import ledger_from
from functions.service.records import NewRun
from pipelines.backend import RunState
from tests.support import env_for, kfp_trigger, team_project

pytestmark = pytest.mark.slow  # CLI commands in subprocesses

ROUTES = """version: 1
pipelines:
  echo: {source: pipelines/echo.py:echo_pipeline}
routes:
  - name: daily
    when: {storage: {bucket: landing, object: "{tenant}/{date}/_SUCCESS"}}
    run: {pipeline: echo, run_key: "{route}/{tenant}/{date}"}
    partition: "{tenant}/{date}"
  - name: plain
    when: {storage: {bucket: other}}
    run: {pipeline: echo}
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = env_for(cwd, routes=cwd / "routes.yaml", KFP_TRIGGER_PAUSED="true")  # reruns wait, queued
    return subprocess.run(kfp_trigger(*args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_partitions_draw_a_matrix_and_reprocess_runs_the_failed_ones_again(tmp_path: Path) -> None:
    team_project(tmp_path, ROUTES)
    ledger = ledger_from(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=back)).isoformat() for back in (2, 1, 0)]
    ended = {("acme", days[0]): RunState.SUCCEEDED, ("acme", days[1]): RunState.FAILED}
    for (tenant, day), state in {**ended, ("globex", days[2]): RunState.SUBMITTED}.items():
        run = NewRun(f"daily/{tenant}/{day}", "daily", "echo", "v1", "local", {}, f"e-{tenant}-{day}")
        claim = ledger.claim(replace_partition(run, f"{tenant}/{day}"), time.time(), 60)
        ledger.mark_submitted(run.run_key, claim.attempt, f"r-{tenant}-{day}", time.time())
        if state.terminal:
            ledger.finish(run.run_key, state, {}, time.time())

    shown = cli("partitions", "daily", "--days", "3", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "route daily: 1 failed, 3 missing, 1 running, 1 succeeded"
    assert lines[1].startswith(f"        {days[0]} … {days[2]}   (S succeeded  F failed")
    assert lines[2:4] == ["acme    SF.", "globex  ..R"]
    assert lines[4].startswith(f"failed     acme/{days[1]}  daily/acme/{days[1]}")
    as_json = json.loads(cli("partitions", "daily", "--days", "3", "--json", cwd=tmp_path).stdout)
    assert as_json["counts"] == {"failed": 1, "missing": 3, "running": 1, "succeeded": 1}

    plain = cli("partitions", "plain", cwd=tmp_path)
    assert (plain.returncode, "names no partition" in plain.stderr) == (1, True)

    dry = cli(
        "backfill", "--route", "daily", "--since", "3d", "--reprocess", "failed", "--dry-run", cwd=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0].startswith(f"rerun       acme/{days[1]}")
    assert "1 candidate(s)" in dry.stdout
    assert "would be: 1 rerun" in dry.stdout
    real = cli("backfill", "--route", "daily", "--since", "3d", "--reprocess", "failed", cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert f"daily/acme/{days[1]}~rerun-1" in real.stdout
    again = json.loads(cli("partitions", "daily", "--days", "3", "--json", cwd=tmp_path).stdout)
    assert again["counts"] == {"missing": 3, "queued": 1, "running": 1, "succeeded": 1}, "paused: it waits"


def replace_partition(run: NewRun, partition: str) -> NewRun:
    from dataclasses import replace

    return replace(run, partition=partition)
