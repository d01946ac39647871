"""CloudEvents as Eventarc delivers them: the one place that builds inbound events.

The inverse of the decoders, for whatever stands in for Google Cloud on one machine: the dev
stack's landing-folder watcher and schedule ticks, the Pub/Sub relay, the local runner's
completion notice, the tests and the benchmarks. Each builder returns `(headers, data)` of a
binary-mode delivery: `ce-` headers, and the JSON data as a dict. Shapes follow the samples in
`shared/samples/gcp-events` (google-cloudevents `MessagePublishedData`, `StorageObjectData`).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from events.decoders import MESSAGE_PUBLISHED, STORAGE_FINALIZED
from events.pubsub import SCHEDULE_ATTRIBUTE, SCHEDULES_TOPIC

Delivery = tuple[dict[str, str], dict[str, object]]  # ce- headers, JSON data


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def headers(event_id: str, source: str, type_: str, time: str = "", subject: str = "") -> dict[str, str]:
    """The binary content mode's headers for one CloudEvent."""
    found = {
        "ce-id": event_id,
        "ce-source": source,
        "ce-type": type_,
        "ce-specversion": "1.0",
        "content-type": "application/json",
    }
    found |= {"ce-time": time} if time else {}
    found |= {"ce-subject": subject} if subject else {}
    return found


def message_published(
    topic: str,
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    message_id: str = "",
    published: datetime | None = None,
    ordering_key: str = "",
    subscription: str = "",
) -> Delivery:
    """A Pub/Sub message on `topic` (`projects/P/topics/T`), as an Eventarc Pub/Sub trigger
    delivers it: `ce-id` is the message id, `ce-source` the topic."""
    message_id = message_id or uuid.uuid4().hex
    when = rfc3339(published or datetime.now(UTC))
    message: dict[str, object] = {
        "data": base64.b64encode(data).decode(),
        "attributes": dict(attributes or {}),
        "messageId": message_id,
        "publishTime": when,
    }
    message |= {"orderingKey": ordering_key} if ordering_key else {}
    body: dict[str, object] = {"message": message}
    body |= {"subscription": subscription} if subscription else {}
    return headers(message_id, f"//pubsub.googleapis.com/{topic}", MESSAGE_PUBLISHED, when), body


def object_finalized(
    bucket: str,
    name: str,
    *,
    generation: int | str,
    size: int,
    updated: datetime | None = None,
    content_type: str = "",
    event_id: str = "",
) -> Delivery:
    """A Cloud Storage object written, as an Eventarc storage trigger delivers it. Without
    `updated` the event carries no time; without `content_type`, no content type."""
    when = rfc3339(updated) if updated else ""
    data: dict[str, object] = {
        "kind": "storage#object",
        "bucket": bucket,
        "name": name,
        "id": f"{bucket}/{name}/{generation}",
        "generation": str(generation),
        "metageneration": "1",
        "size": str(size),
    }
    data |= {"contentType": content_type} if content_type else {}
    data |= {"timeCreated": when, "updated": when} if when else {}
    found = headers(
        event_id or uuid.uuid4().hex,
        f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        STORAGE_FINALIZED,
        when,
        f"objects/{name}",
    )
    return found | {"ce-bucket": bucket}, data


def scheduler_tick(
    job: str, moment: datetime, *, project: str = "local", message_id: str = "", topic: str = SCHEDULES_TOPIC
) -> Delivery:
    """The messagePublished CloudEvent a Cloud Scheduler job with a Pub/Sub target causes: `{}` on
    the schedules topic (`topic`, a short name), the job in the `scheduler_job` attribute,
    published at `moment`."""
    topic = f"projects/{project}/topics/{topic}"
    return message_published(topic, b"{}", {SCHEDULE_ATTRIBUTE: job}, message_id=message_id, published=moment)
