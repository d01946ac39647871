"""Pub/Sub push bodies (events/push.py): what each of a deployment's push paths carries.

Shapes: the wrapped push body (cloud.google.com/pubsub/docs/push; `EMULATOR_PUSH` is what the
gcloud Pub/Sub emulator 0.8.20 posted, observed), Cloud Storage notification attributes
(python-docs-samples storage/cloud-client/notification_polling.py), a Logging sink's message
(the LogEntry as JSON data: cloud.google.com/logging/docs/export/pubsub).
"""

from __future__ import annotations

import base64
import json

import pytest

from events.decoders import decode
from events.envelope import EnvelopeError, parse_http
from events.errors import BadEvent
from events.model import Ignored, Message, ObjectFinalized, TableWritten
from tests.support import DATA

JSON = {"content-type": "application/json"}
EMULATOR_PUSH = {
    "subscription": "projects/proj/subscriptions/pushsub",
    "message": {
        "publishTime": "2026-12-07T04:39:33.368Z",
        "data": "eyJhIjoxfQ==",
        "publish_time": "2026-12-07T04:39:33.368Z",
        "messageId": "1",
        "attributes": {"k": "v"},
        "message_id": "1",
    },
}
OBJECT = {
    "kind": "storage#object",
    "bucket": "acme-landing",
    "name": "responses/2026-12-07/_SUCCESS",
    "generation": "1796000000000001",
    "metageneration": "1",
    "size": "0",
    "contentType": "text/plain",
}


def push(path: str, message: dict[str, object], subscription: str = "projects/p/subscriptions/s") -> object:
    body = json.dumps({"message": message, "subscription": subscription}).encode()
    attributes, data = parse_http(JSON, body, path)
    return decode(attributes, data)


def b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def notification(event_type: str = "OBJECT_FINALIZE", **changes: object) -> dict[str, object]:
    attributes = {
        "notificationConfig": "projects/_/buckets/acme-landing/notificationConfigs/1",
        "eventType": event_type,
        "payloadFormat": "JSON_API_V1",
        "bucketId": "acme-landing",
        "objectId": OBJECT["name"],
        "objectGeneration": OBJECT["generation"],
        "eventTime": "2026-12-07T04:00:00.123456Z",
    }
    message = {"messageId": "9001", "publishTime": "2026-12-07T04:00:01Z", "data": b64(OBJECT)}
    return message | {"attributes": attributes} | changes


def test_the_emulators_push_is_the_message_on_the_topic_its_path_names() -> None:
    body = json.dumps(EMULATOR_PUSH).encode()
    decoded = decode(*parse_http(JSON, body, "/projects/proj/topics/survey-closed"))
    assert isinstance(decoded, Message)
    assert decoded.topic == "projects/proj/topics/survey-closed"
    assert (decoded.message_id, decoded.data) == ("1", b'{"a":1}')
    assert decoded.attributes == {"k": "v"}
    assert decoded.envelope.id == "1"


def test_a_storage_notification_is_the_object_event_eventarc_would_deliver() -> None:
    decoded = push("/notifications/storage", notification())
    assert isinstance(decoded, ObjectFinalized)
    assert decoded.key == f"acme-landing/{OBJECT['name']}#1796000000000001"
    assert decoded.content_type == "text/plain"
    assert decoded.envelope.source == "//storage.googleapis.com/projects/_/buckets/acme-landing"
    assert decoded.envelope.time is not None
    assert decoded.envelope.time.microsecond == 123456


def test_other_object_changes_are_ignored_as_eventarcs_are() -> None:
    decoded = push("/notifications/storage", notification("OBJECT_DELETE"))
    assert isinstance(decoded, Ignored)
    assert "deleted" in decoded.reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (notification("OBJECT_RENAMED"), "unknown event type"),
        (notification(data="%%%"), "not base64"),
        (notification(data=base64.b64encode(b"<xml/>").decode()), "not strict JSON"),
        ({**notification(), "data": None}, "carries no data"),
    ],
)
def test_a_notification_without_an_object_is_a_bad_event(message: dict[str, object], reason: str) -> None:
    """Still a delivery: quarantined and acknowledged, not refused (which would retry it)."""
    with pytest.raises(BadEvent, match=reason):
        push("/notifications/storage", message)


def test_a_notification_without_a_payload_is_a_bad_event() -> None:
    message = notification()
    message["attributes"] = {**message["attributes"], "payloadFormat": "NONE"}  # type: ignore[dict-item]
    with pytest.raises(BadEvent, match="payload format"):
        push("/notifications/storage", message)


def test_a_routed_log_entry_is_the_audit_event_eventarc_would_deliver() -> None:
    entry = json.loads((DATA / "audit" / "LogEntryData-bigqueryjobcompleted.json").read_text())
    message = {"messageId": "77", "data": b64(entry), "attributes": {"logging.googleapis.com/timestamp": "x"}}
    decoded = push("/notifications/audit-log", message)
    assert isinstance(decoded, TableWritten)
    assert decoded.envelope.source == f"//cloudaudit.googleapis.com/{entry['logName']}"


def test_a_message_on_a_product_topic_cannot_pass_for_an_object_event() -> None:
    """What a message carries is the path's, which the module sets: a publisher on a product
    topic who copies a notification's attributes and data still publishes a message."""
    decoded = push("/projects/p/topics/survey-closed", notification())
    assert isinstance(decoded, Message)


NAMELESS = ["/", "/notifications/other", "/projects/p/topics/t/extra", "/projects//topics/t"]


@pytest.mark.parametrize("path", NAMELESS)
def test_a_push_to_a_path_that_names_nothing_is_refused(path: str) -> None:
    with pytest.raises(EnvelopeError, match="URL path") as refused:
        push(path, notification())
    assert refused.value.status == 400


@pytest.mark.parametrize("message", [{"data": "e30="}, {"messageId": 7}, "text"])
def test_a_push_without_a_message_id_is_refused(message: object) -> None:
    body = json.dumps({"message": message, "subscription": "projects/p/subscriptions/s"}).encode()
    with pytest.raises(EnvelopeError, match="push"):
        parse_http(JSON, body, "/projects/p/topics/t")
