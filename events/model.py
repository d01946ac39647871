"""Typed trigger events: what a decoder makes of a CloudEvent, before any routing.

Each event has a stable dedupe `key` (the same logical event always gives the same key, whatever
delivery carried it) and `fields()`: the named values a route may copy into run parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Source(StrEnum):
    """The four kinds of source a route can listen to (and JOIN: a route of several parts, each
    of one of the four; never an event's kind)."""

    STORAGE = "storage"
    PUBSUB = "pubsub"
    BIGQUERY = "bigquery"
    SCHEDULE = "schedule"
    JOIN = "join"


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """The CloudEvent context every event keeps: where it came from, for the trail."""

    id: str
    type: str
    source: str
    time: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectFinalized:
    """A Cloud Storage object (or a new generation of one) was written."""

    envelope: Envelope
    bucket: str
    name: str
    generation: int
    metageneration: int
    size: int
    content_type: str | None = None

    kind = Source.STORAGE

    @property
    def key(self) -> str:
        return f"{self.bucket}/{self.name}#{self.generation}"

    @property
    def index(self) -> str:
        return self.bucket

    def fields(self) -> Mapping[str, object]:
        return {
            "object.bucket": self.bucket,
            "object.name": self.name,
            "object.generation": self.generation,
            "object.metageneration": self.metageneration,
            "object.size": self.size,
            "object.content_type": self.content_type or "",
            "object.uri": f"gs://{self.bucket}/{self.name}",
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A Pub/Sub message from a producer (the product, or anything but Cloud Scheduler).

    `payload` is the message data parsed as a JSON object, or None when it is not one.
    The dedupe key uses the producer's id for the logical message: the payload's `event_id`, or,
    for a CloudEvent in Pub/Sub's binary content mode (kfp-trigger's own results, which chained
    routes listen to), its `ce-id` attribute (CloudEvents Pub/Sub protocol binding, 3.1.1): a
    publisher's retry, or a result published again, makes a new messageId for the same one.
    """

    envelope: Envelope
    topic: str  # projects/P/topics/T
    message_id: str
    publish_time: datetime
    attributes: Mapping[str, str]
    data: bytes
    payload: Mapping[str, Any] | None
    ordering_key: str = ""

    kind = Source.PUBSUB

    @property
    def event_id(self) -> str | None:
        value = self.payload.get("event_id") if self.payload else None
        if isinstance(value, str) and value:
            return value
        return self.attributes.get("ce-id") or None

    @property
    def key(self) -> str:
        return f"{self.topic}#{self.event_id or self.message_id}"

    @property
    def index(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def fields(self) -> Mapping[str, object]:
        return {
            "message.id": self.message_id,
            "message.topic": self.topic,
            "message.publish_time": self.publish_time.isoformat(),
            "message.ordering_key": self.ordering_key,
            "message.event_id": self.event_id or "",
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleTick:
    """A Cloud Scheduler job published to Pub/Sub (the job is named by an attribute).

    The schedule slot is not in the message; the router rounds `publish_time` down to the
    route's cron to find it.
    """

    envelope: Envelope
    job: str
    topic: str
    message_id: str
    publish_time: datetime

    kind = Source.SCHEDULE

    @property
    def key(self) -> str:
        return f"{self.job}@{self.publish_time.isoformat()}"

    @property
    def index(self) -> str:
        return self.job

    def fields(self) -> Mapping[str, object]:
        return {"schedule.job": self.job, "message.id": self.message_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class TableWritten:
    """A BigQuery job completed successfully and wrote to a (non-anonymous) table."""

    envelope: Envelope
    project: str
    dataset: str
    table: str
    job_name: str | None  # projects/P/jobs/J, when the entry names it
    log_entry: str  # logName#insertId
    partition: str = ""  # the destination's partition decorator ($20261126), "" for the whole table
    rows: int | None = None  # rows written, when the entry tells (events/bigquery.py)

    kind = Source.BIGQUERY

    @property
    def key(self) -> str:
        # One job can log several entries (jobChange and tableDataChange): key on the job.
        return f"{self.job_name}->{self.table_id}" if self.job_name else self.log_entry

    @property
    def table_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.table}"

    @property
    def index(self) -> str:
        return self.table_id

    def fields(self) -> Mapping[str, object]:
        return {
            "table.project": self.project,
            "table.dataset": self.dataset,
            "table.table": self.table,
            "table.id": self.table_id,
            "table.partition": self.partition,
            "job.name": self.job_name or "",
            "job.id": (self.job_name or "").rsplit("/", 1)[-1],
        } | ({"job.rows": self.rows} if self.rows is not None else {})


TriggerEvent = ObjectFinalized | Message | ScheduleTick | TableWritten


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed event kfp-trigger recognises but never acts on (e.g. an object deleted)."""

    envelope: Envelope
    reason: str


Decoded = TriggerEvent | Ignored


@dataclass(frozen=True, slots=True)
class NotJson:
    """Stands for a body that was not a JSON document, so the decoder can say why."""

    reason: str


def common_fields(event: TriggerEvent) -> dict[str, object]:
    """Fields every event has, merged with its own."""
    values: dict[str, object] = {
        "event.id": event.envelope.id,
        "event.type": event.envelope.type,
        "event.source": event.envelope.source,
        "event.time": event.envelope.time.isoformat() if event.envelope.time else "",
        "event.key": event.key,
    }
    values.update(event.fields())
    return values


__all__ = [
    "Decoded",
    "Envelope",
    "Ignored",
    "Message",
    "NotJson",
    "ObjectFinalized",
    "ScheduleTick",
    "Source",
    "TableWritten",
    "TriggerEvent",
    "common_fields",
]
