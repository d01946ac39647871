"""Runs one pipeline with kfp.local; started by `LocalBackend.submit` as its own process.

    python -m pipelines.local_runner RUN_DIR

Detaches from its submitter (double fork), writes its pid to RUN_DIR/pid, reads
RUN_DIR/request.json, writes RUN_DIR/status.json (RUNNING, then the terminal state with
metrics and output URIs), and finally posts a completion notice to the request's
`completion_url`, shaped exactly like the Pub/Sub message an exit handler publishes in
production (a binary-mode messagePublished CloudEvent). If the notice cannot be delivered, the
reconciling loop of `kfp-trigger dev` finds the terminal status instead.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pipelines.backend import RunState
from pipelines.local import now_iso, write_json

COMPLETION_TOPIC = "//pubsub.googleapis.com/projects/local/topics/kfp-trigger-completions"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(folder: Path) -> dict[str, Any]:
    from kfp import components, local
    from kfp.dsl import Artifact, Metrics

    request = json.loads((folder / "request.json").read_text())
    started = now_iso()
    write_json(folder / "status.json", {"state": RunState.RUNNING, "started_at": started})
    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=request["pipeline_root"])
    status: dict[str, Any] = {"started_at": started}
    try:
        task = components.load_component_from_file(request["package"])(**request["params"])
    except Exception as exc:
        status |= {"state": RunState.FAILED, "error": _ANSI.sub("", str(exc))[:2000]}
    else:
        metrics: dict[str, float] = {}
        outputs: dict[str, str] = {}
        for name, value in (task.outputs or {}).items():
            if isinstance(value, Artifact):
                outputs[name] = value.uri
                if isinstance(value, Metrics):
                    metrics.update({k: float(v) for k, v in value.metadata.items()})
        status |= {"state": RunState.SUCCEEDED, "metrics": metrics, "outputs": outputs}
    status["finished_at"] = now_iso()
    write_json(folder / "status.json", status)
    return {"request": request, "status": status}


def notify(url: str, run_key: str, run_id: str, state: str, attempts: int = 5) -> bool:
    """POST the completion notice; a few quick retries, then leave it to the reconciler."""
    import requests

    notice = {"run_key": run_key, "run_id": run_id, "state": state}
    message_id = uuid.uuid4().hex
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(notice).encode()).decode(),
            "attributes": {"run_key": run_key},
            "messageId": message_id,
            "publishTime": now_iso(),
        }
    }
    headers = {
        "ce-id": message_id,
        "ce-source": COMPLETION_TOPIC,
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
        "ce-time": now_iso(),
        "content-type": "application/json",
    }
    for attempt in range(attempts):
        try:
            response = requests.post(url, json=body, headers=headers, timeout=10)
            if response.ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.5 * 2**attempt)
    return False


def detach(folder: Path) -> None:
    """Double-fork so the run outlives its submitter and is nobody's zombie; record our pid."""
    if os.fork() > 0:
        os._exit(0)  # the submitter waits for this first child only
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    (folder / "pid").write_text(str(os.getpid()))


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    detach(folder)
    outcome = run(folder)
    request, status = outcome["request"], outcome["status"]
    if request.get("completion_url"):
        notify(request["completion_url"], request["run_key"], request["run_id"], status["state"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
