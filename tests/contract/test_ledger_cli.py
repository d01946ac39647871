"""`kfp-trigger status` and `explain` read either ledger, as an operator runs them."""

from __future__ import annotations

import time
from pathlib import Path

from functions.bootstrap import ledger_from
from functions.service.records import DecisionRecord, NewRun, Outcome

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
    assert report["runs"] == {"route": {"CLAIMED": 1}}
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
