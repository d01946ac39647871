"""Decoder for `google.cloud.pubsub.topic.v1.messagePublished`.

Two producers matter. Cloud Scheduler jobs publish to the schedules topic (the Terraform
module's PREFIX-schedules, `KFP_TRIGGER_SCHEDULES_TOPIC`; only Cloud Scheduler may publish to it)
and name themselves in the `SCHEDULE_ATTRIBUTE` attribute: those become a `ScheduleTick`
(`as_tick`). Everything else is a `Message` (the product's: a JSON body with `event_id` and
`type`), whatever attributes it carries, so a `scheduler_job` attribute on another topic cannot
pass for a tick and skip the product's signature check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events import jsonvalues as jv
from events.errors import BadEvent
from events.model import Envelope, Message, ScheduleTick

SCHEDULE_ATTRIBUTE = "scheduler_job"
SCHEDULES_TOPIC = "kfp-trigger-schedules"  # the schedules topic's short name, unless settings say other
TOPIC_PREFIX = "//pubsub.googleapis.com/"
MAX_ATTRIBUTES = 100


def topic_of(source: str) -> str:
    """`//pubsub.googleapis.com/projects/P/topics/T` → `projects/P/topics/T`."""
    name = source.removeprefix(TOPIC_PREFIX)
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "topics" or not all(parts):
        raise BadEvent("source is not a Pub/Sub topic (//pubsub.googleapis.com/projects/P/topics/T)")
    return name


def decode_published(envelope: Envelope, data: object) -> Message:
    body = jv.as_object(data, "data")
    message = jv.as_object(body.get("message"), "data.message")
    topic = topic_of(envelope.source)
    message_id = _first_text(message, "messageId", "message_id") or envelope.id
    publish_time = jv.timestamp(
        {"publishTime": _first_text(message, "publishTime", "publish_time")},
        "publishTime",
        "data.message",
    )
    attributes = _attributes(message.get("attributes"))
    raw = jv.b64decode(message.get("data"), "data.message.data")
    if not raw and not attributes:
        raise BadEvent("data.message has neither data nor attributes")
    return Message(
        envelope=envelope,
        topic=topic,
        message_id=message_id,
        publish_time=publish_time,
        attributes=attributes,
        data=raw,
        payload=_payload(raw),
        ordering_key=_first_text(message, "orderingKey", "ordering_key"),
    )


def as_tick(message: Message, schedules_topic: str) -> Message | ScheduleTick:
    """`message` as the tick of the Cloud Scheduler job it names, if it came on the schedules
    topic (`schedules_topic`, a short name); otherwise the message itself."""
    job = message.attributes.get(SCHEDULE_ATTRIBUTE)
    if not job or message.topic.rsplit("/", 1)[-1] != schedules_topic:
        return message
    return ScheduleTick(
        envelope=message.envelope,
        job=job,
        topic=message.topic,
        message_id=message.message_id,
        publish_time=message.publish_time,
    )


def _first_text(obj: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _attributes(value: object) -> dict[str, str]:
    if value is None:
        return {}
    attributes = jv.as_object(value, "data.message.attributes")
    if len(attributes) > MAX_ATTRIBUTES:
        raise BadEvent(f"data.message.attributes has more than {MAX_ATTRIBUTES} entries")
    if not all(isinstance(v, str) for v in attributes.values()):
        raise BadEvent("data.message.attributes values must be strings")
    return dict(attributes)


def _payload(raw: bytes) -> Mapping[str, Any] | None:
    """The message data as a JSON object, or None (binary, text, arrays are all legitimate)."""
    if not raw.lstrip().startswith(b"{"):
        return None
    try:
        value = jv.loads(raw)
    except ValueError as exc:
        raise BadEvent(f"data.message.data looks like JSON but is {exc}") from exc
    return value if isinstance(value, dict) else None
