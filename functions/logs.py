"""Logs in Cloud Logging's structured format, safe to fill with untrusted values.

On Cloud Functions (2nd gen) and Cloud Run, a JSON object per line on stderr becomes a log entry:
`severity` and `message` are read as such, `logging.googleapis.com/trace` links the entry to its
request's trace, `logging.googleapis.com/labels` become entry labels, every other key lands in
`jsonPayload`. So:

- messages are constant text: `log.info("decision recorded", extra=fields(run_key=key))`; every value
  that came from outside (object names, attributes, reasons) travels as a field;
- every string is cleaned: ANSI escape sequences and control characters (CR, LF, ESC, …) are
  replaced by their escaped form and long values are cut, so a value cannot forge a second line
  or recolour a terminal, even in the text format `kfp-trigger dev` uses;
- payloads and credentials are never logged (callers pass ids, keys and reasons only);
- each request's lines carry its target and trace (from `traceparent` or
  `X-Cloud-Trace-Context`), and the event id and run key once known, as labels, so Logs Explorer
  shows event → decision → run → result by one filter. `configure(project=…)` (bootstrap passes
  GOOGLE_CLOUD_PROJECT) names the trace's project, as Cloud Logging wants `projects/P/traces/T`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

TRACE = "logging.googleapis.com/trace"
LABELS = "logging.googleapis.com/labels"
MAX_VALUE = 1000  # characters kept of any one value
UNSAFE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
CLOUD_TRACE = re.compile(r"^([0-9a-f]{32})(?:/\d+)?(?:;o=[01])?$")

_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "kfp_trigger_log", default=MappingProxyType({})
)


def fields(**values: object) -> dict[str, object]:
    """`extra=` for a log call: the values go in the entry as fields, never into its message."""
    return {"fields": values}


def clean(value: object) -> str:
    """`value` as text fit for one log line: escapes and control characters shown escaped, cut."""
    text = str(value)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + f"…({len(text) - MAX_VALUE} more)"
    return UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _cleaned(value: object) -> object:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {clean(key): _cleaned(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cleaned(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean(value)


def trace_of(traceparent: str | None, cloud_trace_context: str | None) -> str | None:
    """The trace id of a request: from its W3C `traceparent` or Google's `X-Cloud-Trace-Context`."""
    for value, shape in ((traceparent, TRACEPARENT), (cloud_trace_context, CLOUD_TRACE)):
        if value and (match := shape.match(value.strip().lower())):
            return match[1]
    return None


@contextmanager
def request(target: str, trace: str | None) -> Iterator[None]:
    """Label the log lines written while handling one request with its target and trace."""
    token = _context.set({"target": target, **({"trace": trace} if trace else {})})
    try:
        yield
    finally:
        _context.reset(token)


def label(**values: str) -> None:
    """Add labels (event_id, run_key, …) to the rest of the current request's lines."""
    _context.set(_labels(values))


@contextmanager
def labelled(**values: str) -> Iterator[None]:
    """Label the lines written inside the block only: for work on behalf of another event (a
    queued run started because some other run ended is logged under its own event id)."""
    token = _context.set(_labels(values))
    try:
        yield
    finally:
        _context.reset(token)


def _labels(values: Mapping[str, str]) -> Mapping[str, str]:
    return {**_context.get(), **{key: clean(value)[:200] for key, value in values.items() if value}}


class CloudLogging(logging.Formatter):
    """One JSON object per record, as Cloud Logging reads structured logs."""

    def __init__(self, project: str = "") -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        labels = dict(_context.get())
        trace = labels.pop("trace", None)
        entry: dict[str, object] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": clean(record.getMessage()),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "logger": record.name,
        }
        values = getattr(record, "fields", {})
        entry.update({clean(key): _cleaned(value) for key, value in values.items()})
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        if trace:
            entry[TRACE] = f"projects/{self.project}/traces/{trace}" if self.project else trace
        if labels:
            entry[LABELS] = labels
        return json.dumps(entry, default=str)  # ASCII only: no raw control or bidi characters


class Text(logging.Formatter):
    """For a terminal (`kfp-trigger dev`): time, level, logger, message, then key=value fields."""

    def format(self, record: logging.LogRecord) -> str:
        values = {**_context.get(), **getattr(record, "fields", {})}
        pairs = " ".join(f"{clean(key)}={clean(value)}" for key, value in values.items())
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{time} {record.levelname} {record.name} {clean(record.getMessage())} {pairs}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(format: str = "json", level: int = logging.INFO, *, project: str = "") -> None:
    """Send the `kfp_trigger` loggers to stderr in `format` (json or text); idempotent.
    `project` names the trace's project in JSON lines."""
    logger = logging.getLogger("kfp_trigger")
    handler: Any = next((h for h in logger.handlers if getattr(h, "kfp_trigger", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.kfp_trigger = True
        logger.addHandler(handler)
    handler.setFormatter(CloudLogging(project) if format == "json" else Text())
    logger.setLevel(level)
    logger.propagate = False
