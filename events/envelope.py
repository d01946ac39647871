"""Turn an HTTP request's headers and body into CloudEvent (attributes, data), sans I/O.

Accepts the binary content mode (what Eventarc sends), the structured mode
(`application/cloudevents+json`), a Pub/Sub push body (what a deployment's own push
subscriptions send; `events.push` reads it by the request's path) and the legacy gen1
background-event body, which the legacy table below converts the way functions-framework does.
What is not a CloudEvent at all raises `EnvelopeError`, whose message is safe to return: it
never echoes headers or the body.

Data that is present but not JSON stays `NotJson(reason)`: the request *is* a CloudEvent, so the
decoder rejects it as a bad event (acknowledged and quarantined) instead of a bad request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from cloudevents import exceptions as ce_errors
from cloudevents.http import from_http

from events import jsonvalues as jv
from events.decoders import MESSAGE_PUBLISHED, STORAGE_FINALIZED
from events.model import NotJson
from events.push import PushError, from_push, is_push

REQUIRED_HEADERS = ("ce-id", "ce-source", "ce-type", "ce-specversion")
STRUCTURED = "application/cloudevents+json"
LEGACY = "application/json"  # gen1 background-event bodies

# gen1 eventType → (CloudEvent type, service host). Mirrors functions-framework's
# event_conversion tables, so golden legacy payloads decode to the same events.
LEGACY_TYPES: Mapping[str, tuple[str, str]] = {
    "google.storage.object.finalize": (STORAGE_FINALIZED, "storage.googleapis.com"),
    "providers/cloud.storage/eventTypes/object.change": (
        STORAGE_FINALIZED,
        "storage.googleapis.com",
    ),
    "google.storage.object.delete": (
        "google.cloud.storage.object.v1.deleted",
        "storage.googleapis.com",
    ),
    "google.storage.object.archive": (
        "google.cloud.storage.object.v1.archived",
        "storage.googleapis.com",
    ),
    "google.storage.object.metadataUpdate": (
        "google.cloud.storage.object.v1.metadataUpdated",
        "storage.googleapis.com",
    ),
    "google.pubsub.topic.publish": (MESSAGE_PUBLISHED, "pubsub.googleapis.com"),
    "providers/cloud.pubsub/eventTypes/topic.publish": (MESSAGE_PUBLISHED, "pubsub.googleapis.com"),
}


# A top-level-looking `"name": "string"` pair in the first bytes of a body too large to parse.
PEEKED_BYTES = 64 * 1024
PEEKED = re.compile(r'"(id|type|source|subject|time|messageId)"\s*:\s*"((?:[^"\\\x00-\x1f]|\\.){0,1024})"')


def peek(headers: Mapping[str, str], head: bytes) -> dict[str, str]:
    """The CloudEvent attributes of a request whose body is too large to parse, for its
    quarantine record: the `ce-` headers (binary mode), else what the first bytes of a
    structured body say (`id`, `type`, `source`, `subject`, `time`; a Pub/Sub push body's
    `messageId` as the id), the first occurrence of each in its first PEEKED_BYTES. Unverified,
    for people to read."""
    lower = {key.lower(): value for key, value in headers.items()}
    attributes = {key[3:]: value for key, value in lower.items() if key.startswith("ce-")}
    if attributes:
        return attributes
    text = head[:PEEKED_BYTES].decode("utf-8", "replace")
    for match in PEEKED.finditer(text):
        key = "id" if match[1] == "messageId" else match[1]
        if key not in attributes:
            try:
                attributes[key] = str(json.loads(f'"{match[2]}"'))
            except ValueError:
                continue
        if len(attributes) == 5:  # id, type, source, subject, time: the rest is the data's
            break
    return attributes


class EnvelopeError(Exception):
    """The request is not a CloudEvent. `status` is the HTTP answer (400 or 415)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _data(raw: bytes | str) -> object:
    if not raw:
        return NotJson("the body is empty")
    try:
        return jv.loads(raw)
    except ValueError as exc:
        return NotJson(f"the body is not strict JSON: {exc}")


def parse_http(headers: Mapping[str, str], body: bytes, path: str = "/") -> tuple[dict[str, str], object]:
    """Parse one HTTP request (its headers, body and URL path) into CloudEvent context
    attributes and data.

    Raises:
        EnvelopeError: the request is not a CloudEvent in any accepted mode.
    """
    lower = {key.lower(): value for key, value in headers.items()}
    present = [name for name in REQUIRED_HEADERS if name in lower]
    if present:
        missing = [name for name in REQUIRED_HEADERS if name not in lower]
        if missing:
            raise EnvelopeError(f"binary-mode CloudEvent is missing headers: {', '.join(missing)}")
        if lower["ce-specversion"] == "1.0":
            return binary_mode(lower, body)
        attributes, data = _sdk(lower, body)
        if "ce-time" not in lower:
            attributes.pop("time", None)  # the SDK invents "now"; an absent time stays absent
        return attributes, data

    content_type = lower.get("content-type", "").split(";")[0].strip().lower()
    if content_type.startswith("application/cloudevents") and content_type != STRUCTURED:
        raise EnvelopeError(f"content type {content_type[:60]!r} is not supported", status=415)
    if content_type not in (STRUCTURED, LEGACY):
        # A browser posts text/plain, form or multipart bodies cross-site without asking first
        # (CORS "simple requests"); a CloudEvent is never sent that way.
        raise EnvelopeError(
            f"content type {content_type[:60]!r} is not accepted: {STRUCTURED} or ce- headers", status=415
        )
    try:
        document = jv.loads(body)
    except ValueError as exc:
        raise EnvelopeError(f"the body is not strict JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise EnvelopeError("the body is not a CloudEvent (a JSON object was expected)")
    if "specversion" in document:
        attributes, data = _sdk(lower, body)
        if "time" not in document:
            attributes.pop("time", None)
        return attributes, data
    if is_push(document):
        try:
            return from_push(document, path)
        except PushError as exc:
            raise EnvelopeError(str(exc)) from exc
    if "context" in document or "eventType" in document:
        return _from_legacy(document)
    raise EnvelopeError("the request is not a CloudEvent: no ce- headers and no specversion")


def binary_mode(headers: Mapping[str, str], body: bytes) -> tuple[dict[str, str], object]:
    """A specversion 1.0 binary-mode request (what Eventarc sends), read as the CloudEvents SDK
    reads it (`cloudevents.sdk.event.base.UnmarshalBinary`: every `ce-` header an attribute,
    `content-type` the `datacontenttype`), without the SDK's generic machinery, which cost
    about a third of the in-process path per event (issue 19). `headers` are lowercased.
    tests/unit/test_envelope.py holds it to the SDK's answers on arbitrary headers."""
    attributes = {name[3:]: value for name, value in headers.items() if name.startswith("ce-")}
    if "content-type" in headers:
        attributes["datacontenttype"] = headers["content-type"]
    return attributes, _data(body)


def _sdk(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], object]:
    try:
        event = from_http(headers, body, data_unmarshaller=_data)
    except (ce_errors.GenericException, ValueError, TypeError, RecursionError) as exc:
        raise EnvelopeError(f"invalid CloudEvent: {type(exc).__name__}") from exc
    attributes = {key: str(value) for key, value in event.get_attributes().items()}
    return attributes, event.data


def _from_legacy(document: Mapping[str, Any]) -> tuple[dict[str, str], object]:
    context = document.get("context", document)
    if not isinstance(context, dict):
        raise EnvelopeError("legacy event context is not an object")
    event_type = context.get("eventType")
    mapped = LEGACY_TYPES.get(event_type) if isinstance(event_type, str) else None
    if mapped is None:
        raise EnvelopeError("legacy event type is not one kfp-trigger converts")
    ce_type, service = mapped
    resource = context.get("resource")
    name = resource.get("name") if isinstance(resource, dict) else resource
    if not isinstance(name, str) or not isinstance(context.get("eventId"), str):
        raise EnvelopeError("legacy event has no resource name or eventId")
    data = document.get("data")
    attributes = {
        "specversion": "1.0",
        "id": context["eventId"],
        "type": ce_type,
        "time": str(context.get("timestamp", "")),
    }
    if service == "storage.googleapis.com":
        bucket_path = name.split("/objects/", 1)[0]
        attributes["source"] = f"//{service}/{bucket_path}"
    else:
        attributes["source"] = f"//{service}/{name}"
        message = dict(data) if isinstance(data, dict) else {}
        message.setdefault("messageId", context["eventId"])
        message.setdefault("publishTime", context.get("timestamp"))
        data = {"message": message}
    if not attributes["time"]:
        del attributes["time"]
    return attributes, data
