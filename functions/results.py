"""Result and quarantine documents.

A result is a structured-mode CloudEvent. Its id is derived from the run key and the terminal
state, so a result published twice (publishing is at-least-once) carries the same id and
consumers can drop the repeat.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

from functions.ledger import RunRecord

RESULT_TYPE = "dev.kfp-trigger.run.finished.v1"
SOURCE_PREFIX = "//kfp-trigger/routes/"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result_id(run_key: str, state: str) -> str:
    return hashlib.sha256(f"{run_key}\n{state}".encode()).hexdigest()[:32]


def result_event(run: RunRecord) -> dict[str, object]:
    details = run.details
    return {
        "specversion": "1.0",
        "id": result_id(run.run_key, run.state),
        "type": RESULT_TYPE,
        "source": f"{SOURCE_PREFIX}{run.route}",
        "subject": run.run_key,
        "time": iso(run.finished_at),
        "datacontenttype": "application/json",
        "data": {
            "run_key": run.run_key,
            "route": run.route,
            "pipeline": run.pipeline,
            "version": run.version,
            "backend": run.backend,
            "run_id": run.run_id,
            "state": run.state,
            "started_at": details.get("started_at"),
            "finished_at": details.get("finished_at") or iso(run.finished_at),
            "metrics": details.get("metrics", {}),
            "outputs": details.get("outputs", {}),
            "error": details.get("error"),
            "params": run.params,
            "event_id": run.event_id,
        },
    }


def quarantine_record(
    reason: str, attributes: Mapping[str, str], body: bytes, *, target: str, now: float
) -> dict[str, object]:
    """What is kept of a rejected event: enough to inspect and replay it, never credentials.

    `attributes` are CloudEvent attributes (or `ce-` headers); the body is kept whole, base64,
    when it is within the size cap the caller enforced, and is otherwise summarised by its hash.
    """
    return {
        "at": iso(now),
        "target": target,
        "reason": reason,
        "event": {key: value[:1024] for key, value in attributes.items()},
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_size": len(body),
        "body_base64": base64.b64encode(body).decode(),
    }
