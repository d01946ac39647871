"""Results: the result CloudEvent of a finished run, publishing it once, and quarantine records.

A result is a structured-mode CloudEvent. It carries the run's trace context (`traceparent`,
the CloudEvents distributed tracing extension) when there is one. Its id is derived from the run
key and the terminal state, so a result published twice (publishing is at-least-once) carries the same id and
consumers can drop the repeat. Publishing is at-least-once: one publisher at a time holds the
right to publish (`Ledger.begin_publish`) until the ledger marks it published.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.logs import fields
from functions.service import crashpoints
from functions.service.alerts import Alert, explain_command, raise_alert
from functions.service.batches import batch_params
from functions.service.ports import Services
from functions.service.records import RunRecord, iso
from pipelines.backend import RunState
from pipelines.parameters import BATCH_MANIFEST_PARAMETER, BATCH_OBJECTS_PARAMETER, JOIN_PARTS_PARAMETER

log = logging.getLogger("kfp_trigger.results")

RESULT_TYPE = "dev.kfp-trigger.run.finished.v2"  # the data's schema: RunFinished (v2: no params)
SOURCE_PREFIX = "//kfp-trigger/routes/"
SHARED_SCHEMES = ("gs://", "https://")  # output URIs the product may read; local paths never leave
MAX_ERROR = 300
MAX_OBJECTS = 1000  # a batch's objects listed in its result; a larger batch names its manifest


class ResultError(BaseModel):
    """Why a run failed, in a few words: no backend response bodies, no stack traces."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["submit", "run"] = Field(
        description="submit: it never started; run: the engine says it failed"
    )
    message: str = Field(max_length=MAX_ERROR, description="the first line of the reason, cut")


class JoinPartResult(BaseModel):
    """The event that delivered one part of a join run."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_id: str = Field(description="its CloudEvent id")
    event_key: str = Field(description="what it was about: bucket/object#generation, topic/message id, …")


class RunFinished(BaseModel):
    """The data of a `dev.kfp-trigger.run.finished.v2` CloudEvent: what the product learns of a run.

    Only these fields leave the service (deploy/schemas/run-finished.v2.schema.json is generated
    from this model for the product team): not the run's parameters, not local paths, not raw
    backend errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    run_key: str = Field(description="the run's idempotency key (also the CloudEvent subject)")
    route: str
    pipeline: str
    version: str = Field(description="the pipeline's content hash (sha256)")
    backend: Literal["local", "kfp", "vertex"]
    engine: str | None = Field(
        None,
        description="the engine that ran the run (or refused it) and its release: 'kfp 2.14.0' (the "
        "API server's tag), 'vertex', 'local (kfp 2.17.3)'; null if no engine was asked",
    )
    run_id: str | None = Field(description="the engine's run id or job name; null if it never started")
    state: Literal["SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"]
    started_at: str | None = Field(description="RFC 3339, as the engine reports it")
    finished_at: str | None = Field(description="RFC 3339")
    metrics: dict[str, float] = Field(description="the run's logged metrics (system.Metrics)")
    outputs: dict[str, str] = Field(description="output name → gs:// or https:// URI (e.g. the model)")
    error: ResultError | None = None
    event_id: str = Field(description="the CloudEvent id of the event that started the run")
    objects: list[str] | None = Field(
        None,
        description=f"a batch run's objects (gs:// URIs), sorted, the first {MAX_OBJECTS}; "
        "null for a run that is not a batch",
    )
    objects_total: int | None = Field(None, description="how many objects the batch run covered")
    objects_manifest: str | None = Field(
        None, description="the batch's manifest (gs:// URI): the whole list when it is longer"
    )
    parts: dict[str, JoinPartResult] | None = Field(
        None, description="a join run's parts: part name → the event that delivered it; null otherwise"
    )
    superseded_by: str | None = Field(
        None,
        description="CANCELED by limits.concurrency on_newer: supersede: the run key of the newer run "
        "that replaced it",
    )


def _parts(params: Mapping[str, object]) -> dict[str, JoinPartResult] | None:
    listed = params.get(JOIN_PARTS_PARAMETER)
    if not isinstance(listed, Mapping):
        return None
    return {
        str(name): JoinPartResult(
            event_id=str(part.get("event_id", "")), event_key=str(part.get("event_key", ""))
        )
        for name, part in listed.items()
        if isinstance(part, Mapping)
    }


def result_id(run_key: str, state: str) -> str:
    return hashlib.sha256(f"{run_key}\n{state}".encode()).hexdigest()[:32]


def result_event(run: RunRecord) -> dict[str, object]:
    """The result CloudEvent of a terminal run (with a batch's objects in `run.params`)."""
    details = run.details
    raw_error = details.get("error")
    error = None
    if raw_error:
        first_line = str(raw_error).strip().splitlines()[0] if str(raw_error).strip() else "failed"
        error = ResultError(kind="run" if run.run_id else "submit", message=first_line[:MAX_ERROR])
    outputs = details.get("outputs", {})
    metrics = details.get("metrics", {})
    data = RunFinished(
        run_key=run.run_key,
        route=run.route,
        pipeline=run.pipeline,
        version=run.version,
        backend=run.backend,  # validated: one of the three
        engine=_text(details.get("engine")),
        run_id=run.run_id,
        state=run.state.value,  # terminal: validated
        started_at=_text(details.get("started_at")),
        finished_at=_text(details.get("finished_at")) or iso(run.finished_at),
        metrics=metrics if isinstance(metrics, dict) else {},
        outputs={
            name: uri
            for name, uri in (outputs.items() if isinstance(outputs, dict) else ())
            if isinstance(uri, str) and uri.startswith(SHARED_SCHEMES)
        },
        error=error,
        event_id=run.event_id,
        superseded_by=_text(details.get("superseded_by")),
        parts=_parts(run.params),
        **_objects(run.params),
    )
    return {
        "specversion": "1.0",
        "id": result_id(run.run_key, run.state),
        "type": RESULT_TYPE,
        "source": f"{SOURCE_PREFIX}{run.route}",
        "subject": run.run_key,
        "time": iso(run.finished_at),
        "datacontenttype": "application/json",
        "data": data.model_dump(mode="json"),
        # the distributed tracing extension: the trace of the event that started the run
        **({"traceparent": run.trace} if run.trace else {}),
    }


def result_schema() -> dict[str, object]:
    """The JSON Schema of a result's data (deploy/schemas/run-finished.v2.schema.json)."""
    schema = RunFinished.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = RESULT_TYPE
    return schema


def _objects(params: Mapping[str, object]) -> dict[str, object]:
    objects = params.get(BATCH_OBJECTS_PARAMETER)
    if not isinstance(objects, list):
        return {}
    manifest = params.get(BATCH_MANIFEST_PARAMETER)
    return {
        "objects": sorted(map(str, objects))[:MAX_OBJECTS],
        "objects_total": len(objects),
        "objects_manifest": manifest if isinstance(manifest, str) else None,
    }


def _text(value: object) -> str | None:
    return str(value) if value else None


def quarantine_record(
    reason: str,
    attributes: Mapping[str, str],
    body: bytes,
    *,
    target: str,
    now: float,
    whole: tuple[int, str] | None = None,
) -> dict[str, object]:
    """What is kept of a rejected event: enough to inspect and replay it, never credentials.

    `attributes` are CloudEvent attributes; the body is kept whole, base64, when it is within the
    size cap the caller enforced. For a larger one the caller passes its first bytes as `body` and
    `whole`, the size and sha256 of all of it: the record keeps those and says it is cut.
    """
    size, digest = whole or (len(body), hashlib.sha256(body).hexdigest())
    return {
        "at": iso(now),
        "target": target,
        "reason": reason,
        "event": {key: value[:1024] for key, value in attributes.items()},
        "body_sha256": digest,
        "body_size": size,
        "body_base64": base64.b64encode(body).decode(),
        **({"body_cut_at": len(body)} if whole else {}),
    }


def _alert_failed(services: Services, run: RunRecord, event: Mapping[str, object]) -> None:
    data = event["data"]
    error = data.get("error") if isinstance(data, Mapping) else None
    reason = f": {error['message']}" if isinstance(error, Mapping) else ""
    alert = Alert(
        kind="run.failed",
        route=run.route,
        subject=run.run_key,
        summary=f"run {run.run_key} of route {run.route} failed{reason}"[:500],
        explain=explain_command(run.run_key),
    )
    raise_alert(services, alert)


def publish_result(services: Services, run_key: str, held: RunRecord | None = None) -> bool:
    """Publish a terminal run's result unless it is published already (or being published).
    `held`: the run as `runs.finish(..., publishing=True)` ended it, holding the right already."""
    # A publisher that dies holds the right to publish for one lease, as a claimant does.
    lease = services.settings.claim_lease_seconds
    record = held or services.store.begin_publish(run_key, services.clock(), lease)
    if record is None:
        return False
    event = result_event(replace(record, params=batch_params(services, record)))
    with services.telemetry.span("kfp_trigger.publish_result", record.trace, run_key=run_key):
        services.results.publish(event)
        if record.state is RunState.FAILED:  # before it is marked published: a failed alert is retried
            _alert_failed(services, record, event)
    services.crash(crashpoints.AFTER_PUBLISH)
    data = record.details
    summary = {"state": record.state, "metrics": data.get("metrics", {}), "result_id": event["id"]}
    log.info("result published", extra=fields(run_key=run_key, **summary))
    services.store.mark_published(run_key, services.clock())
    return True
