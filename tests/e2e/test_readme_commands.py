"""The README's commands, run as written: the quick start's `make demo` (`kfp-trigger demo`) and the
walkthrough of a team's own project; and the README stays short, the docs without history."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
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


def walkthrough() -> str:
    """The README's walkthrough as one script: every ```sh block of "Your own project", in order
    (```console blocks need an installation or a Google Cloud project, and are not run)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Your own project\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)
    assert len(blocks) >= 2, "the walkthrough's commands are ```sh blocks"
    return "set -euo pipefail\n" + "".join(blocks)


def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """From an empty folder, with a new user's environment: init, both checks, a file landed
    under `kfp-trigger dev`, the run, its story and its result with the model's gs:// URI."""
    env = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG")}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    script = subprocess.Popen(
        ["bash", "-c", walkthrough()],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # `kfp-trigger dev &` with it: stopped below whatever happens
    )
    try:
        out, err = script.communicate(timeout=600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGTERM)
        script.communicate()
    assert script.returncode == 0, out[-3000:] + err[-3000:]
    assert "2 passed, 0 failed" in out
    assert " SUCCEEDED  csat-landed " in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["data"]["outputs"]["model"].startswith("gs://my-team-artifacts/csat-retrain/")


def test_the_readme_is_short_and_the_docs_tell_no_history() -> None:
    """Where people start stays short; docs describe the product as it is, not how it came to be."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 300
    history = re.compile(
        r"\bissue \d+|\bthe session before\b|\bLatest \(|\bprevious runs?\b|\bearlier runs?\b", re.I
    )
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    told = [f"{page.name}: {match[0]}" for page in pages for match in history.finditer(page.read_text())]
    assert told == []
    linked = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert linked == {f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md")}, (
        "every page, from the README"
    )
