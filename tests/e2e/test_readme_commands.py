"""The README's quick start: `make demo` runs `kfp-trigger demo`; it must succeed for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, kfp_trigger

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses


def test_demo_runs_one_real_pipeline_to_a_published_result(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    result = subprocess.run(
        kfp_trigger("demo", "--state-dir", str(state), "--landing-dir", str(state / "landing")),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEMO OK" in result.stdout
    (line,) = (state / "results.jsonl").read_text().splitlines()
    event = json.loads(line)
    assert event["type"] == "dev.kfp-trigger.run.finished.v2"
    assert event["data"]["state"] == "SUCCEEDED"
    assert set(event["data"]["metrics"]) == {"accuracy", "auc", "rows_train", "rows_test"}
    assert event["data"]["metrics"]["rows_train"] + event["data"]["metrics"]["rows_test"] == 600
    model = event["data"]["outputs"]["model"]
    assert model.startswith("gs://acme-ml-artifacts/survey-retrain/"), (
        "the bucket stand-in's URI, never a path"
    )
    assert (state / "landing" / model.removeprefix("gs://")).is_file(), "the landing folder holds it"
