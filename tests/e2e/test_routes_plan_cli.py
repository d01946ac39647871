"""`kfp-trigger routes plan` as a pull request's check runs it (issue 37): the kept events of a
SQLite ledger through the base's routes and the change's, per route the runs gained, lost and
changed, text and JSON, the exit status for CI, and the ledger file byte for byte as it was."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from events.envelope import parse_http
from events.eventarc import object_finalized
from functions.bootstrap import ledger_from
from functions.service.records import KeptEvent, data_text
from tests.support import env_for, kfp_trigger, team_project

pytestmark = pytest.mark.slow  # CLI commands in subprocesses

BASE = """version: 1
pipelines:
  echo: {source: pipelines/echo.py:echo_pipeline}
routes:
  - name: daily
    when: {storage: {bucket: landing, object: "%s/{date}/_SUCCESS"}}
    run: {pipeline: echo}
"""


def plan(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = env_for(state, routes=state / "routes.yaml")
    return subprocess.run(
        kfp_trigger("routes", "plan", *args), capture_output=True, text=True, cwd=state, env=env, timeout=300
    )


def digest(folder: Path) -> dict[str, str]:
    """The ledger file and its write-ahead log. Not its -shm, the WAL's shared-memory index, whose
    read marks every reader sets (sqlite.org/walformat.html, "2.1 The WAL-Index Format")."""
    files = [folder / "ledger.sqlite3", folder / "ledger.sqlite3-wal"]
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files if path.exists()}


def test_a_narrowed_route_loses_the_runs_it_no_longer_matches_and_the_ledger_is_untouched(
    tmp_path: Path,
) -> None:
    base, change = (
        team_project(tmp_path / "base", BASE % "{tenant}"),
        team_project(tmp_path / "change", BASE % "acme"),
    )
    ledger = ledger_from(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    for number, tenant in enumerate(("acme", "globex", "initech")):
        headers, data = object_finalized(
            "landing", f"{tenant}/d1/_SUCCESS", generation=1, size=1, event_id=f"e-{number}"
        )
        attributes, parsed = parse_http(headers, json.dumps(data).encode())
        ledger.keep(KeptEvent(f"e-{number}", time.time(), attributes, data_text(parsed)))
    before = digest(tmp_path)

    shown = plan(tmp_path, str(base), str(change), "--since", "1d")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("3 kept events since ")
    assert lines[1] == "route daily: 3 → 1 events  -2 lost"
    assert lines[2] == "  - e-1  run daily/landing/globex/d1/_SUCCESS#1"
    assert lines[-1].startswith("not compared: what happens after routing")

    checked = plan(tmp_path, str(base), str(change), "--json", "--exit-code")
    assert checked.returncode == 1, "with --exit-code, runs that differ fail the check"
    report = json.loads(checked.stdout)
    assert (report["events"], report["differs"]) == (3, True)
    assert [(r["route"], r["old"], r["new"], r["lost"]) for r in report["routes"]] == [("daily", 3, 1, 2)]
    assert plan(tmp_path, str(base), str(base), "--exit-code").returncode == 0
    assert digest(tmp_path) == before, "read-only: the ledger's files are as they were"

    (tmp_path / "broken.yaml").write_text("version: 1\nroutes: [{name: x}]\n")
    broken = plan(tmp_path, str(base), str(tmp_path / "broken.yaml"))
    assert broken.returncode == 2
    assert "broken.yaml:" in broken.stderr
    assert "routes check" in broken.stderr
