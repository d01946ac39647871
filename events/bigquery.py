"""Decoder for BigQuery entries of `google.cloud.audit.log.v1.written`.

Two audit formats exist. The legacy `jobservice.jobcompleted` entry carries the job in
`serviceData.jobCompletedEvent`. The newer `BigQueryAuditMetadata` entries carry
`metadata.jobChange` (one per state change) or `metadata.tableDataChange`. Each successful write
to a named table becomes a `TableWritten`; everything else is `Ignored` with a reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from events import jsonvalues as jv
from events.model import Envelope, Ignored, TableWritten

BIGQUERY = "bigquery.googleapis.com"
LEGACY_CONFIGS = ("load", "query", "tableCopy")  # extract writes to GCS, not to a table
NEW_CONFIGS = ("loadConfig", "queryConfig", "tableCopyConfig")


def decode_audit_entry(envelope: Envelope, data: object) -> TableWritten | Ignored:
    entry = jv.as_object(data, "data")
    payload = jv.as_object(entry.get("protoPayload"), "data.protoPayload")
    service = payload.get("serviceName")
    if service != BIGQUERY:
        return Ignored(envelope, f"audit entry from {_short(service)}, not BigQuery")
    status = _obj(payload.get("status"))
    if status.get("code"):
        return Ignored(envelope, "the BigQuery request failed")

    where = f"{jv.text(entry, 'logName', 'data')}#{jv.text(entry, 'insertId', 'data')}"
    if "serviceData" in payload:
        return _legacy(envelope, jv.as_object(payload["serviceData"], "serviceData"), where)
    metadata = payload.get("metadata")
    if isinstance(metadata, dict):
        for key, reader in _NEW_FORMAT.items():
            if key in metadata:
                change = jv.as_object(metadata[key], f"metadata.{key}")
                return reader(envelope, change, str(payload.get("resourceName", "")), where)
    return Ignored(envelope, f"BigQuery {_short(payload.get('methodName'))} writes no table data")


def _legacy(envelope: Envelope, service_data: Mapping[str, Any], where: str) -> TableWritten | Ignored:
    completed = service_data.get("jobCompletedEvent")
    if not isinstance(completed, dict):
        return Ignored(envelope, "legacy BigQuery entry is not a jobcompleted event")
    if completed.get("eventName") == "extract_job_completed":
        return Ignored(envelope, "extract jobs write to Cloud Storage, not to a table")
    job = jv.as_object(completed.get("job"), "jobCompletedEvent.job")
    status = _obj(job.get("jobStatus"))
    if status.get("state") != "DONE" or status.get("error"):
        return Ignored(envelope, "the BigQuery job did not complete successfully")
    config = _obj(job.get("jobConfiguration"))
    for kind in LEGACY_CONFIGS:
        table = _obj(config.get(kind)).get("destinationTable")
        if isinstance(table, dict):
            name = _obj(job.get("jobName"))
            job_name = (
                f"projects/{name.get('projectId')}/jobs/{name.get('jobId')}" if name.get("jobId") else None
            )
            return _written(
                envelope,
                (table.get("projectId"), table.get("datasetId"), table.get("tableId")),
                job_name,
                where,
            )
    return Ignored(envelope, "the BigQuery job has no destination table")


def _job_change(
    envelope: Envelope, change: Mapping[str, Any], resource: str, where: str
) -> TableWritten | Ignored:
    if change.get("after") != "DONE":
        return Ignored(envelope, f"BigQuery job state {_short(change.get('after'))}, not DONE")
    job = _obj(change.get("job"))
    if _obj(job.get("jobStatus")).get("errorResult"):
        return Ignored(envelope, "the BigQuery job did not complete successfully")
    config = _obj(job.get("jobConfig"))
    if config.get("type") == "EXTRACT":
        return Ignored(envelope, "extract jobs write to Cloud Storage, not to a table")
    for kind in NEW_CONFIGS:
        destination = _obj(config.get(kind)).get("destinationTable")
        if isinstance(destination, str):
            return _written(envelope, _table_path(destination), job.get("jobName"), where)
    return Ignored(envelope, "the BigQuery job has no destination table")


def _table_data_change(
    envelope: Envelope, change: Mapping[str, Any], resource: str, where: str
) -> TableWritten | Ignored:
    return _written(envelope, _table_path(resource), change.get("jobName"), where)


_NEW_FORMAT: Mapping[str, Callable[[Envelope, Mapping[str, Any], str, str], TableWritten | Ignored]]
_NEW_FORMAT = {"jobChange": _job_change, "tableDataChange": _table_data_change}


def _obj(value: object) -> Mapping[str, Any]:
    """An optional nested object: absent, null or of another type reads as empty."""
    return value if isinstance(value, dict) else {}


def _table_path(path: str) -> tuple[object, object, object]:
    """`projects/P/datasets/D/tables/T` → (P, D, T); anything else gives Nones."""
    parts = path.split("/")
    if len(parts) == 6 and parts[0::2] == ["projects", "datasets", "tables"]:
        return parts[1], parts[3], parts[5]
    return None, None, None


def _written(
    envelope: Envelope, table: tuple[object, object, object], job_name: object, where: str
) -> TableWritten | Ignored:
    project, dataset, name = (part if isinstance(part, str) else "" for part in table)
    if not (project and dataset and name):
        return Ignored(envelope, "the BigQuery entry names no destination table")
    if dataset.startswith("_"):  # query results land in hidden `_…` datasets; `anon…` is a fine table name
        return Ignored(envelope, "anonymous query-result table")
    return TableWritten(
        envelope=envelope,
        project=project,
        dataset=dataset,
        table=name,
        job_name=job_name if isinstance(job_name, str) and job_name else None,
        log_entry=where,
    )


def _short(value: object) -> str:
    return str(value)[:80] if value else "(none)"
