"""Pick the decoder for a CloudEvent from a table keyed by its `type`.

`decode(attributes, data)` is the single entry: it builds the `Envelope`, looks the type up and
returns a typed event, an `Ignored` (recognised, never acted on), or raises `BadEvent`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from events.bigquery import decode_audit_entry
from events.errors import BadEvent
from events.model import Decoded, Envelope, Ignored, Message, Source
from events.pubsub import SCHEDULES_TOPIC, as_tick, decode_published
from events.storage import decode_finalized

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
AUDIT_LOG_WRITTEN = "google.cloud.audit.log.v1.written"

MAX_ATTRIBUTE_LENGTH = 1024

Decoder = Callable[[Envelope, object], Decoded]


def _ignore(reason: str) -> Decoder:
    def decoder(envelope: Envelope, data: object) -> Ignored:
        return Ignored(envelope, reason)

    return decoder


DECODERS: Mapping[str, Decoder] = {
    STORAGE_FINALIZED: decode_finalized,
    "google.cloud.storage.object.v1.deleted": _ignore("object deleted; only finalized objects start runs"),
    "google.cloud.storage.object.v1.archived": _ignore("object archived; only finalized objects start runs"),
    "google.cloud.storage.object.v1.metadataUpdated": _ignore(
        "metadata-only change; only finalized objects start runs"
    ),
    MESSAGE_PUBLISHED: decode_published,
    AUDIT_LOG_WRITTEN: decode_audit_entry,
    "google.cloud.scheduler.job.v1.executed": _ignore(
        "scheduler 'executed' events are not used: give the job a Pub/Sub target"
    ),
}


SOURCES_BY_PREFIX = (
    ("google.cloud.storage.", Source.STORAGE),
    ("google.cloud.pubsub.", Source.PUBSUB),
    ("google.cloud.audit.", Source.BIGQUERY),
    ("google.cloud.scheduler.", Source.SCHEDULE),
)


def source_of(event_type: str) -> str:
    """The kind of source a CloudEvent type comes from, "unknown" for any other: a label of
    few values (for metrics), whatever a caller puts in `type`."""
    return next((source for prefix, source in SOURCES_BY_PREFIX if event_type.startswith(prefix)), "unknown")


def envelope_of(attributes: Mapping[str, str]) -> Envelope:
    """The CloudEvent context attributes, length-capped, as an `Envelope`."""
    for name in ("id", "type", "source"):
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            raise BadEvent(f"CloudEvent attribute {name!r} is missing")
        if len(value) > MAX_ATTRIBUTE_LENGTH:
            raise BadEvent(f"CloudEvent attribute {name!r} is longer than {MAX_ATTRIBUTE_LENGTH}")
    time = attributes.get("time")
    parsed: datetime | None = None
    if isinstance(time, str) and time:
        try:
            parsed = datetime.fromisoformat(time.replace("Z", "+00:00"))
        except ValueError as exc:
            raise BadEvent("CloudEvent attribute 'time' is not RFC 3339") from exc
    return Envelope(id=attributes["id"], type=attributes["type"], source=attributes["source"], time=parsed)


def decode(attributes: Mapping[str, str], data: object, schedules_topic: str = SCHEDULES_TOPIC) -> Decoded:
    """Decode one CloudEvent given its context attributes and its (parsed) data; a message on
    `schedules_topic` (a short name) that names its Cloud Scheduler job is that job's tick.

    Raises:
        BadEvent: the type is unknown or the data does not fit it. Permanent: quarantine it.
    """
    envelope = envelope_of(attributes)
    decoder = DECODERS.get(envelope.type)
    if decoder is None:
        raise BadEvent(f"unknown event type {envelope.type[:100]!r}")
    decoded = decoder(envelope, data)
    return as_tick(decoded, schedules_topic) if isinstance(decoded, Message) else decoded
