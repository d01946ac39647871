"""The two targets bench/serving.py serves with functions-framework, side by side.

- `handle_event`: kfp-trigger's own target, configured from the environment like the deployed
  function (SQLite ledger, JSONL sinks), except that the backend records instead of starting
  runs: every submission's run key is appended to BENCH_RUNS_FILE, so the benchmark counts the
  runs created and any duplicates.
- `noop`: a CloudEvent function that does nothing, the baseline: what functions-framework costs.
- `two_commits`: a CloudEvent function that makes only the two SQLite commits a new event needs
  (claim, then mark submitted) on a ledger of the same settings: the floor of a durable answer
  on the embedded ledger, beside which handle_event's cost is read.
- `read_two_commits`: the same with the one read before deciding that a new event makes too
  (`RunStore.read`: its run keys, its object's generation mark, the pause flag): every round trip
  of handle_event's on the ledger, and nothing else.

    functions-framework --source bench/serving_app.py --target handle_event
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import replace
from pathlib import Path

import functions_framework
from cloudevents.http import CloudEvent

from functions import bootstrap
from functions.adapters.sqlite.ledger import SqliteLedger
from functions.service.records import NewRun
from main import handle_event  # noqa: F401 - served by functions-framework
from pipelines.backend import RunState, RunStatus, Submission
from pipelines.engines import Engine


class FileRecordingBackend:
    """Starts nothing; appends each submitted run key to a file (one line per run created). The
    file stays open: the recording stands in for the engine's API, which is not kfp-trigger's own
    cost, so it costs as little as it can (a locked append, flushed)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._out = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life

    def submit(self, submission: Submission) -> str:
        fcntl.flock(self._out, fcntl.LOCK_EX)
        try:
            self._out.write(submission.run_key.replace("\n", " ") + "\n")
            self._out.flush()
        finally:
            fcntl.flock(self._out, fcntl.LOCK_UN)
        return f"bench-{submission.run_key}"

    def find(self, run_key: str) -> str | None:
        with open(self.path, encoding="utf-8") as runs:
            return f"bench-{run_key}" if run_key + "\n" in runs.readlines() else None

    def status(self, run_id: str) -> RunStatus:
        return RunStatus(run_id, RunState.RUNNING)

    def cancel(self, run_id: str) -> None:
        return None

    def engine(self) -> Engine:
        return Engine("recording")


if os.environ.get("BENCH_RUNS_FILE"):
    recording = FileRecordingBackend(os.environ["BENCH_RUNS_FILE"])
    bootstrap.install(replace(bootstrap.services(), backends={"local": recording}))


@functions_framework.cloud_event
def noop(event: CloudEvent) -> None:
    return None


_floor: list[SqliteLedger] = []


@functions_framework.cloud_event
def two_commits(event: CloudEvent) -> None:
    _commits(_ledger(), str(event["id"]))


@functions_framework.cloud_event
def read_two_commits(event: CloudEvent) -> None:
    ledger, key = _ledger(), str(event["id"])
    ledger.read(time.time(), [key], marks=[key], flags=["paused"])
    _commits(ledger, key)


def _ledger() -> SqliteLedger:
    if not _floor:
        _floor.append(SqliteLedger(Path(os.environ["KFP_TRIGGER_STATE_DIR"]) / "floor.sqlite3"))
    return _floor[0]


def _commits(ledger: SqliteLedger, key: str) -> None:
    run = NewRun(key, "floor", "p", "v", "local", {}, key)
    claim = ledger.claim(run, time.time(), 60.0)
    ledger.mark_submitted(key, claim.attempt, f"floor-{key}", time.time())
