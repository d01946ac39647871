"""Decoder for BigQuery entries of `google.cloud.audit.log.v1.written`.

Two audit formats exist. The legacy `jobservice.jobcompleted` entry carries the job in
`serviceData.jobCompletedEvent`. The newer `BigQueryAuditMetadata` entries carry
`metadata.jobChange` (one per state change) or `metadata.tableDataChange`. Each successful write
to a named table becomes a `TableWritten`; everything else is `Ignored` with a reason.

A destination's partition decorator (`responses$20261126`) is its `partition`, the table named
without it. Rows written (`rows`), as each format reports them (BigQuery audit log reference,
AuditData.JobStatistics and BigQueryAuditMetadata.JobStats / TableDataChange): a query's
`queryOutputRowCount` / `queryStats.outputRowCount`, a table data change's `insertedRowsCount`;
a load job reports bytes only (`totalLoadOutputBytes` / `loadStats.totalOutputBytes`), so its
rows are known only when it wrote none (0 bytes: 0 rows), unknown (None) otherwise.
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
    statistics = _obj(job.get("jobStatistics"))
    for kind in LEGACY_CONFIGS:
        table = _obj(config.get(kind)).get("destinationTable")
        if isinstance(table, dict):
            name = _obj(job.get("jobName"))
            job_name = (
                f"projects/{name.get('projectId')}/jobs/{name.get('jobId')}" if name.get("jobId") else None
            )
            rows = _rows(statistics.get("queryOutputRowCount"), statistics.get("totalLoadOutputBytes"))
            return _written(
                envelope,
                (table.get("projectId"), table.get("datasetId"), table.get("tableId")),
                job_name,
                where,
                rows,
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
    statistics = _obj(job.get("jobStats"))
    rows = _rows(
        _obj(statistics.get("queryStats")).get("outputRowCount"),
        _obj(statistics.get("loadStats")).get("totalOutputBytes"),
    )
    for kind in NEW_CONFIGS:
        destination = _obj(config.get(kind)).get("destinationTable")
        if isinstance(destination, str):
            return _written(envelope, _table_path(destination), job.get("jobName"), where, rows)
    return Ignored(envelope, "the BigQuery job has no destination table")


def _table_data_change(
    envelope: Envelope, change: Mapping[str, Any], resource: str, where: str
) -> TableWritten | Ignored:
    rows = _rows(change.get("insertedRowsCount"), None)
    return _written(envelope, _table_path(resource), change.get("jobName"), where, rows)


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


def _count(value: object) -> int | None:
    """An int64 as the audit log writes it (a string of digits), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None


def _decorator(text: str) -> bool:
    """A partition decorator: $YYYYMMDD[HH], $YYYYMM, $YYYY, a range partition's id, __NULL__."""
    return 0 < len(text) <= 64 and text.isascii() and all(c.isalnum() or c == "_" for c in text)


def _rows(counted: object, load_bytes: object) -> int | None:
    """Rows written: the count when the entry gives one; 0 for a load of 0 bytes; else None."""
    if (rows := _count(counted)) is not None:
        return rows
    return 0 if _count(load_bytes) == 0 else None


def _written(
    envelope: Envelope,
    table: tuple[object, object, object],
    job_name: object,
    where: str,
    rows: int | None = None,
) -> TableWritten | Ignored:
    project, dataset, decorated = (part if isinstance(part, str) else "" for part in table)
    name, decorator, partition = decorated.partition("$")
    if decorator and not _decorator(partition):
        return Ignored(envelope, f"the destination's partition decorator {partition[:80]!r} is not one")
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
        partition=partition,
        rows=rows,
    )


def _short(value: object) -> str:
    return str(value)[:80] if value else "(none)"
