"""Pub/Sub push requests → CloudEvent (attributes, data), sans I/O.

Every inbound path of a deployment is a push subscription of its own (deploy/terraform/
deliveries.tf), so that each has a dead-letter topic. Pub/Sub posts the wrapped body
`{"message": {data, attributes, messageId, publishTime, …}, "subscription": "projects/P/subscriptions/S"}`
(cloud.google.com/pubsub/docs/push) to the endpoint the module chose, and the endpoint's path
says what the message carries, as functions-framework reads a topic from a push endpoint's path
(functions_framework/event_conversion.py, `_parse_pubsub_topic`):

- `/projects/P/topics/T`: a message published on T, as Eventarc's Pub/Sub trigger delivers it
  (type messagePublished, `id` the message id, data `{message, subscription}`);
- `/notifications/storage`: a Cloud Storage notification, payload format JSON_API_V1: the
  object event it reports, its data the object resource, as Eventarc's storage trigger
  delivers it (attributes `eventType`, `bucketId`, `objectId`, `eventTime`: python-docs-samples
  storage/cloud-client/notification_polling.py; cloud.google.com/storage/docs/pubsub-notifications);
- `/notifications/audit-log`: a log entry a Logging sink routed to Pub/Sub (the message data
  is the LogEntry as JSON: cloud.google.com/logging/docs/export/pubsub), as Eventarc's audit-log
  trigger delivers it (type audit.log.v1.written, data the entry).

A push whose message cannot be read as one of these is still a delivery: its content is handed
on as data the decoders refuse (`NotJson`, or a type no decoder knows), so it is quarantined
and acknowledged. Only a body that is no push at all, or a path that names none of the three,
is refused (`EnvelopeError`: a deployment's mistake, retried until it dead-letters).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

from events import jsonvalues as jv
from events.decoders import AUDIT_LOG_WRITTEN, MESSAGE_PUBLISHED
from events.model import NotJson

STORAGE_PATH = "/notifications/storage"
AUDIT_LOG_PATH = "/notifications/audit-log"
TOPIC_PATH = re.compile(r"/(projects/[^/]+/topics/[^/]+)")
PATHS = f"/projects/P/topics/T, {STORAGE_PATH} or {AUDIT_LOG_PATH}"

# A notification's eventType → the CloudEvent type Eventarc gives the same change.
STORAGE_TYPES: Mapping[str, str] = {
    "OBJECT_FINALIZE": "google.cloud.storage.object.v1.finalized",
    "OBJECT_DELETE": "google.cloud.storage.object.v1.deleted",
    "OBJECT_ARCHIVE": "google.cloud.storage.object.v1.archived",
    "OBJECT_METADATA_UPDATE": "google.cloud.storage.object.v1.metadataUpdated",
}

Parsed = tuple[dict[str, str], object]


class PushError(ValueError):
    """The request is no Pub/Sub push this deployment sends (the reason is safe to return)."""


def is_push(document: Mapping[str, Any]) -> bool:
    """A wrapped push body: `message` and `subscription`, and nothing of a CloudEvent."""
    return "message" in document and "subscription" in document and "specversion" not in document


def from_push(document: Mapping[str, Any], path: str) -> Parsed:
    """The CloudEvent a push body at `path` carries.

    Raises:
        PushError: `message` has no id, or `path` names no kind of push.
    """
    message = document.get("message")
    if not isinstance(message, dict):
        raise PushError("a Pub/Sub push body without a message object")
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        raise PushError("a Pub/Sub push message without messageId")
    topic = TOPIC_PATH.fullmatch(path)
    if topic:
        return _published(topic[1], message, message_id, document.get("subscription"))
    reader = READERS.get(path)
    if reader is None:
        raise PushError(f"a Pub/Sub push names what it carries in the URL path: {PATHS}")
    return reader(message, message_id)


def _published(topic: str, message: Mapping[str, Any], message_id: str, subscription: object) -> Parsed:
    attributes = _context(
        message_id, MESSAGE_PUBLISHED, f"//pubsub.googleapis.com/{topic}", _published_at(message)
    )
    return attributes, {"message": dict(message), "subscription": subscription}


def _storage(message: Mapping[str, Any], message_id: str) -> Parsed:
    notice = _attributes(message)
    event_type = notice.get("eventType", "")
    attributes = _context(
        message_id,
        STORAGE_TYPES.get(event_type, f"storage notification {event_type[:60]!r}"),
        f"//storage.googleapis.com/projects/_/buckets/{notice.get('bucketId', '')}",
        notice.get("eventTime") or _published_at(message),
    )
    attributes |= {"subject": f"objects/{notice['objectId']}"} if notice.get("objectId") else {}
    if notice.get("payloadFormat", "JSON_API_V1") != "JSON_API_V1":
        return attributes, NotJson("the notification carries no object (payload format not JSON_API_V1)")
    return attributes, _data(message)


def _audit_log(message: Mapping[str, Any], message_id: str) -> Parsed:
    data = _data(message)
    log_name = data.get("logName") if isinstance(data, dict) else None
    source = f"//cloudaudit.googleapis.com/{log_name if isinstance(log_name, str) else ''}"
    return _context(message_id, AUDIT_LOG_WRITTEN, source, _published_at(message)), data


READERS: Mapping[str, Callable[[Mapping[str, Any], str], Parsed]] = {
    STORAGE_PATH: _storage,
    AUDIT_LOG_PATH: _audit_log,
}


def _attributes(message: Mapping[str, Any]) -> dict[str, str]:
    found = message.get("attributes")
    if not isinstance(found, dict):
        return {}
    return {key: value for key, value in found.items() if isinstance(value, str)}


def _context(message_id: str, event_type: str, source: str, time: object) -> dict[str, str]:
    """A CloudEvent's context attributes; no `time` unless the message says one."""
    attributes = {"specversion": "1.0", "id": message_id, "type": event_type, "source": source}
    return attributes | ({"time": time} if isinstance(time, str) and time else {})


def _published_at(message: Mapping[str, Any]) -> object:
    return message.get("publishTime") or message.get("publish_time")


def _data(message: Mapping[str, Any]) -> object:
    """The message's data, base64-decoded and parsed as strict JSON, or why it is not."""
    encoded = message.get("data")
    if not isinstance(encoded, str) or not encoded:
        return NotJson("the message carries no data")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return NotJson("the message data is not base64")
    try:
        return jv.loads(raw)
    except ValueError as exc:
        return NotJson(f"the message data is not strict JSON: {exc}")
