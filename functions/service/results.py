"""Results: the result CloudEvent of a finished run, publishing it once, and quarantine records.

A result is a structured-mode CloudEvent. Its id is derived from the run key and the terminal
state, so a result published twice (publishing is at-least-once) carries the same id and
consumers can drop the repeat. Publishing is at-least-once: one publisher at a time holds the
right to publish (`Ledger.begin_publish`) until the ledger marks it published.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from functions.logs import fields
from functions.service import crashpoints
from functions.service.ports import Services
from functions.service.records import RunRecord

log = logging.getLogger("kfp_trigger.results")

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


def publish_result(services: Services, run_key: str) -> bool:
    """Publish a terminal run's result unless it is published already (or being published)."""
    # A publisher that dies holds the right to publish for one lease, as a claimant does.
    lease = services.settings.claim_lease_seconds
    record = services.store.begin_publish(run_key, services.clock(), lease)
    if record is None:
        return False
    event = result_event(record)
    services.results.publish(event)
    services.crash(crashpoints.AFTER_PUBLISH)
    data = record.details
    summary = {"state": record.state, "metrics": data.get("metrics", {}), "result_id": event["id"]}
    log.info("result published", extra=fields(run_key=run_key, **summary))
    services.store.mark_published(run_key, services.clock())
    return True
