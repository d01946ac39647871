"""The `local` backend: each run is kfp.local in its own subprocess (`pipelines.local_runner`).

The landing folder stands in for Cloud Storage: a pipeline that declares a `landing_root` input
gets it, so `gs://BUCKET/NAME` reads `landing/BUCKET/NAME`; and a pipeline whose `pipeline_root`
is `gs://BUCKET/PATH` writes its artifacts to `landing/BUCKET/PATH/<run id>/`, which its result
names by their `gs://` URIs (the model's, say). Other runs keep their artifacts in their run's
folder, and a result never names a local path.

A run lives in `<runs>/<run_id>/`: `request.json` (written before the runner starts),
`started` (the runner detached), `pid` (the runner's), `status.json` (written by the runner,
atomically) and `runner.log`. The run id is derived from
the run key, so `find(run_key)` is a directory lookup and a second `submit` for the same key
adopts the first run instead of starting another.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from events.errors import Gone, TransientError
from pipelines.backend import RunState, RunStatus, Submission
from pipelines.engines import Engine
from pipelines.parameters import COMPLETION_TOPIC_PARAMETER, filled

# A pipeline that declares this input reads gs://BUCKET/NAME from LANDING/BUCKET/NAME when run
# locally: the embedded default's stand-in for Cloud Storage.
LANDING_PARAMETER = "landing_root"


def run_id_for(run_key: str) -> str:
    return "local-" + hashlib.sha256(run_key.encode()).hexdigest()[:20]


def write_json(path: Path, value: object) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(value, out, indent=1, sort_keys=True)
    os.replace(temporary, path)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LocalBackend:
    def __init__(
        self,
        runs_dir: Path,
        *,
        completion_url: str | None = None,
        completion_topic: str = "",
        landing_dir: Path | None = None,
        python: str = sys.executable,
    ):
        self.runs_dir = runs_dir
        self.completion_url = completion_url
        self.completion_topic = completion_topic
        self.landing_dir = landing_dir
        self.python = python

    def submit(self, submission: Submission) -> str:
        run_id = run_id_for(submission.run_key)
        folder = self.runs_dir / run_id
        if (folder / "started").exists():
            return run_id  # already started for this run key: adopt it
        params = filled(submission, self.completion_topic)
        wants_landing = LANDING_PARAMETER in submission.pipeline.inputs and not params.get(LANDING_PARAMETER)
        if wants_landing and self.landing_dir is not None:
            params[LANDING_PARAMETER] = str(self.landing_dir.resolve())
        # A notified pipeline publishes its own notice from its exit task; the runner does not.
        notifies_itself = COMPLETION_TOPIC_PARAMETER in submission.pipeline.inputs
        request = {
            "run_id": run_id,
            "run_key": submission.run_key,
            "route": submission.route,
            "pipeline": submission.pipeline.name,
            "version": submission.pipeline.version,
            "package": str(submission.pipeline.package.resolve()),
            # Always the run's own folder: metrics are read from this run's executor outputs.
            "pipeline_root": str(self._artifacts(submission, run_id) or (folder / "outputs").resolve()),
            "params": params,
            "completion_url": self.completion_url,
            "completion_topic": "" if notifies_itself else self.completion_topic,
            "submitted_at": now_iso(),
        }
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "request.json", request)
            with open(folder / "runner.log", "ab") as log:
                # The runner detaches itself: this returns once it has, and it writes `pid`. -P: the
                # working folder is not on its path, where a team's own pipelines/ would shadow ours.
                subprocess.run(
                    [self.python, "-P", "-m", "pipelines.local.runner", str(folder.resolve())],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                    timeout=60,
                )
            (folder / "started").touch()
        except (OSError, subprocess.SubprocessError) as exc:
            raise TransientError(f"cannot start the local runner: {type(exc).__name__}") from exc
        return run_id

    def _artifacts(self, submission: Submission, run_id: str) -> Path | None:
        """Where a run whose pipeline_root is `gs://BUCKET/PATH` writes: the landing folder's
        stand-in for that bucket (None without a landing folder or such a root)."""
        root = submission.pipeline.pipeline_root or ""
        if self.landing_dir is None or not root.startswith("gs://"):
            return None
        return (self.landing_dir / root.removeprefix("gs://").strip("/") / run_id).resolve()

    def _uri(self, path: str) -> str:
        """A local artifact's `gs://` URI if the landing folder holds it, else the path itself."""
        if self.landing_dir is not None and Path(path).is_relative_to(landing := self.landing_dir.resolve()):
            return "gs://" + Path(path).relative_to(landing).as_posix()
        return path

    def status(self, run_id: str) -> RunStatus:
        """The run's state from its folder.

        Raises:
            Gone: no such run (its folder was never made or was deleted), as the
                engines answer 404: `submit` makes the folder before it returns the id.
        """
        folder = self.runs_dir / run_id
        if not (folder / "request.json").exists():
            raise Gone(f"local run {run_id!r} not found in {self.runs_dir}")
        status_file = folder / "status.json"
        if status_file.exists():
            raw = json.loads(status_file.read_text())
            return RunStatus(
                run_id=run_id,
                state=RunState(raw["state"]),
                started_at=raw.get("started_at"),
                finished_at=raw.get("finished_at"),
                metrics=raw.get("metrics", {}),
                outputs={name: self._uri(path) for name, path in raw.get("outputs", {}).items()},
                error=raw.get("error"),
                log=str((folder / "runner.log").resolve()),
            )
        pid = folder / "pid"
        if not pid.exists() or _alive(int(pid.read_text())):
            return RunStatus(run_id, RunState.PENDING)
        return RunStatus(run_id, RunState.FAILED, error="the local runner exited without a status")

    def find(self, run_key: str) -> str | None:
        run_id = run_id_for(run_key)
        return run_id if (self.runs_dir / run_id / "started").exists() else None

    def engine(self) -> Engine:
        """kfp.local in a subprocess of this machine: the installed KFP SDK's version."""
        from importlib.metadata import version

        return Engine("local", version("kfp"))

    def cancel(self, run_id: str) -> None:
        """Stop the runner and everything it started (its process group: the runner leads no
        group of its own, it is the second child of a new session), then record CANCELED,
        unless the run ended first."""
        folder = self.runs_dir / run_id
        if (folder / "pid").exists() and (folder / "pgid").exists():
            pid, group = int((folder / "pid").read_text()), int((folder / "pgid").read_text())
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) == group:  # still this run's runner, not a reused pid
                    os.killpg(group, signal.SIGTERM)
        status = folder / "status.json"
        written = json.loads(status.read_text()) if status.exists() else {}
        if not RunState(written.get("state", RunState.PENDING)).terminal:
            write_json(status, {**written, "state": RunState.CANCELED, "finished_at": now_iso()})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as somebody else's
    return True
