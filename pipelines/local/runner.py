"""Runs one pipeline with kfp.local; started by `LocalBackend.submit` as its own process.

    python -m pipelines.local.runner RUN_DIR

Detaches from its submitter (double fork), writes its pid to RUN_DIR/pid, reads
RUN_DIR/request.json, writes RUN_DIR/status.json (RUNNING, then the terminal state with
metrics and output URIs), and finally sends the completion notice an exit handler sends in
production: published to `completion_topic` (Pub/Sub) and/or posted to `completion_url` as the
messagePublished CloudEvent Eventarc would deliver. If the notice is lost, the reconciling loop
of `kfp-trigger dev` finds the terminal status instead.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from events.eventarc import message_published
from pipelines.backend import RunState
from pipelines.local.backend import now_iso, write_json
from pipelines.notice import RUN_KEY_ATTRIBUTE, Notice

COMPLETION_TOPIC = "projects/local/topics/kfp-trigger-completions"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(folder: Path) -> dict[str, Any]:
    from kfp import components, local
    from kfp.dsl import Artifact

    request = json.loads((folder / "request.json").read_text())
    started = now_iso()
    write_json(folder / "status.json", {"state": RunState.RUNNING, "started_at": started})
    local.init(local.SubprocessRunner(use_venv=False), pipeline_root=request["pipeline_root"])
    status: dict[str, Any] = {"started_at": started}
    try:
        task = components.load_component_from_file(request["package"])(**request["params"])
    except Exception as exc:
        said = _ANSI.sub("", str(exc))
        raised = task_error(folder / "runner.log")
        status |= {
            "state": RunState.FAILED,
            "error": (f"{said} It raised {raised}" if raised else said)[:2000],
        }
    else:
        outputs = {
            name: value.uri for name, value in (task.outputs or {}).items() if isinstance(value, Artifact)
        }
        status |= {"state": RunState.SUCCEEDED, "outputs": outputs}
    status["metrics"] = metrics_of(Path(request["package"]), Path(request["pipeline_root"]))
    status["finished_at"] = now_iso()
    write_json(folder / "status.json", status)
    return {"request": request, "status": status}


RAISED = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.*)$")


def task_error(log: Path) -> str | None:
    """The exception a failed task raised, from the end of its traceback in the runner's log
    (kfp.local says only which task failed): `RuntimeError: boom`."""
    sys.stdout.flush()
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    found = [match for line in lines if (match := RAISED.match(_ANSI.sub("", line)))]
    return f"{found[-1][1]}: {found[-1][2]}" if found else None


def metrics_of(package: Path, pipeline_root: Path) -> dict[str, float]:
    """Every `system.Metrics` artifact the run logged, read from its executor outputs.

    The compiled spec says which task outputs are metrics (in any nested DAG, so a pipeline
    wrapped in an exit handler reports the same metrics); each task's executor output under the
    pipeline root holds their values.
    """
    import yaml

    spec = next(doc for doc in yaml.safe_load_all(package.read_text()) if doc is not None)
    dags = [spec.get("root", {}), *list(spec.get("components", {}).values())]
    metric_outputs: set[tuple[str, str]] = set()
    for dag in dags:
        for task, definition in dag.get("dag", {}).get("tasks", {}).items():
            component = spec.get("components", {}).get(definition.get("componentRef", {}).get("name", ""), {})
            for name, artifact in component.get("outputDefinitions", {}).get("artifacts", {}).items():
                if artifact.get("artifactType", {}).get("schemaTitle") == "system.Metrics":
                    metric_outputs.add((task, name))
    metrics: dict[str, float] = {}
    for output in sorted(pipeline_root.glob("*/*/executor_output.json")):
        task = output.parent.name
        artifacts = json.loads(output.read_text()).get("artifacts", {})
        for name, listed in artifacts.items():
            if (task, name) in metric_outputs:
                for artifact in listed.get("artifacts", []):
                    metrics.update({k: float(v) for k, v in artifact.get("metadata", {}).items()})
    return metrics


def post_notice(url: str, notice: Notice, attempts: int = 5) -> bool:
    """POST the notice as the messagePublished CloudEvent Eventarc would deliver; a few quick
    retries with exponential backoff (tenacity), then leave it to the reconciler."""
    import requests
    import tenacity

    headers, body = message_published(COMPLETION_TOPIC, notice.encode(), {RUN_KEY_ATTRIBUTE: notice.run_key})

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=0.5),
        retry=tenacity.retry_if_result(lambda ok: not ok)
        | tenacity.retry_if_exception_type(requests.RequestException),
        retry_error_callback=lambda state: False,
    )
    def send() -> bool:
        return requests.post(url, json=body, headers=headers, timeout=10).ok

    return send()


def publish_notice(topic: str, notice: Notice) -> None:
    """Publish the notice to Pub/Sub (`pubsub://projects/P/topics/T`; honours PUBSUB_EMULATOR_HOST)."""
    from google.cloud.pubsub_v1 import PublisherClient

    publisher = PublisherClient()
    attributes = {RUN_KEY_ATTRIBUTE: notice.run_key}
    publisher.publish(topic.removeprefix("pubsub://"), notice.encode(), **attributes).result(timeout=60)


def detach(folder: Path) -> None:
    """Double-fork so the run outlives its submitter and is nobody's zombie; record our pid.

    The submitter waits for this process only, and it exits once the runner's pid is written
    (atomically), so a submit that returned always finds the pid. (It once left at the first
    fork and the middle process waited instead, for nobody: under load a submit returned before
    the pid existed.)"""
    if os.fork() > 0:
        deadline = time.monotonic() + 10
        while not (folder / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)  # the runner is adopted by init: nobody's zombie
    write_json(folder / "pgid", os.getpgrp())  # its session's group: what a cancel stops
    write_json(folder / "pid", os.getpid())


def main(argv: list[str]) -> int:
    folder = Path(argv[1])
    detach(folder)
    outcome = run(folder)
    request, status = outcome["request"], outcome["status"]
    notice = Notice(request["run_key"], status["state"], run_id=request["run_id"], error=status.get("error"))
    if request.get("completion_topic"):
        publish_notice(request["completion_topic"], notice)
    if request.get("completion_url"):
        post_notice(request["completion_url"], notice)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
