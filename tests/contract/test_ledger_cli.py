"""`kfp-trigger status` and `explain` read either ledger, as an operator runs them."""

from __future__ import annotations

import time
from pathlib import Path

from functions.bootstrap import ledger_from
from functions.service.records import OTHER_ROUTES, DecisionRecord, KeptEvent, NewRun, Outcome

RUN = NewRun("route/bucket/name#1", "route", "pipeline", "v1", "local", {"n": 1}, "event-1")
LEASE = 1.0


def test_status_and_explain_read_this_ledger_through_the_cli(ledger_url: str, tmp_path: Path) -> None:
    """Time is real here: the CLI reads the lease on its own clock."""
    ledger = ledger_from(ledger_url)
    import json
    import os
    import subprocess

    from tests.support import ROOT, kfp_trigger

    ledger.claim(RUN, time.time() - 10, LEASE)
    ledger.record(
        DecisionRecord(
            time.time(), "event-1", "b/o#1", "t", Outcome.RUN, "route", "submitted as r-1", RUN.run_key
        )
    )
    ledger.record(DecisionRecord(time.time(), "bad-1", "", "t", Outcome.QUARANTINED, reason="not JSON"))
    ledger.keep(KeptEvent("bad-1", time.time(), {"id": "bad-1"}, "", "not JSON"))
    ledger.set_flag("paused", True)
    time.sleep(LEASE + 0.2)  # the claim's holder is gone: its lease runs out (on the server's clock)
    env = {**os.environ, "KFP_TRIGGER_LEDGER": ledger_url, "KFP_TRIGGER_STATE_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            kfp_trigger(*args), capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
        )

    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["paused"] is True
    # No routes.yaml here: status still answers, every route's runs counted as removed routes'
    assert report["runs"] == {OTHER_ROUTES: {"CLAIMED": 1}}
    assert "routes.yaml" in status.stderr
    assert "counted together" in status.stderr
    assert (report["queued"], report["quarantined"]) == (0, 1)
    assert report["oldest_open_claim"]["run_key"] == RUN.run_key
    assert report["oldest_open_claim"]["past_lease"] is True
    text = run("status").stdout
    assert "PAUSED" in text
    assert "PAST ITS LEASE" in text
    explained = run("explain", "event-1")
    assert explained.returncode == 0, explained.stderr
    assert "submitted as r-1" in explained.stdout
    assert f"run {RUN.run_key}: CLAIMED" in explained.stdout


def test_explain_follows_a_supersede_chain(ledger_url: str, tmp_path: Path) -> None:
    """Issue 16 item 3: a superseded run names the run that replaced it, and explain follows on;
    a run whose cancel is requested names the newer run too."""
    import json
    import os
    import subprocess
    from dataclasses import replace

    from functions.service.supersede import SCOPE
    from pipelines.backend import RunState
    from tests.support import ROOT, kfp_trigger

    ledger = ledger_from(ledger_url)
    now = time.time()
    monday, tuesday, wednesday = (
        replace(RUN, run_key=f"latest/acme/{day}", event_id=day) for day in ("mon", "tue", "wed")
    )
    for run in (monday, tuesday, wednesday):
        ledger.claim(run, now, LEASE)
    ledger.mark_submitted(monday.run_key, 1, "r-1", now)
    ledger.finish(monday.run_key, RunState.CANCELED, {"superseded_by": tuesday.run_key}, now)
    ledger.finish(tuesday.run_key, RunState.CANCELED, {"superseded_by": wednesday.run_key}, now)
    ledger.mark_submitted(wednesday.run_key, 1, "r-3", now)
    ledger.hold(SCOPE + wednesday.run_key, 1, "latest/acme/thu", now)  # thursday asked to cancel it
    ledger.record(
        DecisionRecord(now, "mon", "b/o#1", "t", Outcome.RUN, "latest", "submitted as r-1", monday.run_key)
    )
    env = {**os.environ, "KFP_TRIGGER_LEDGER": ledger_url, "KFP_TRIGGER_STATE_DIR": str(tmp_path)}
    done = subprocess.run(
        kfp_trigger("explain", "mon", "--json"),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    told = json.loads(done.stdout)
    assert [run["run_key"] for run in told["runs"]] == [monday.run_key, tuesday.run_key, wednesday.run_key]
    text = subprocess.run(
        kfp_trigger("explain", "mon"), capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    ).stdout
    assert f"superseded by {tuesday.run_key}" in text
    assert f"superseded by {wednesday.run_key}" in text
    assert "superseded by latest/acme/thu" in text, "a cancel requested, not yet ended"
