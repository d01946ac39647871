"""HTTP → CloudEvent: the accepted modes, and clear refusals for what is not a CloudEvent."""

from __future__ import annotations

import json

import pytest

from events.envelope import EnvelopeError, parse_http
from events.model import NotJson
from tests.support import binary, structured

ATTRIBUTES = {
    "specversion": "1.0",
    "id": "1",
    "type": "google.cloud.storage.object.v1.finalized",
    "source": "//storage.googleapis.com/projects/_/buckets/b",
}


def test_binary_and_structured_give_the_same_event() -> None:
    data = {"bucket": "b", "name": "n", "generation": "1"}
    assert parse_http(*binary(ATTRIBUTES, data)) == parse_http(*structured(ATTRIBUTES, data))


def test_missing_time_stays_missing() -> None:
    """The SDK fills in "now"; an event without a time must not look fresh forever."""
    attributes, _ = parse_http(*binary(ATTRIBUTES, {}))
    assert "time" not in attributes
    attributes, _ = parse_http(*structured(ATTRIBUTES, {}))
    assert "time" not in attributes


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_binary_mode_missing_a_required_header(missing: str) -> None:
    headers, body = binary(ATTRIBUTES, {})
    del headers[missing]
    with pytest.raises(EnvelopeError, match=missing):
        parse_http(headers, body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"<xml/>", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": NaN}', "NaN"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"hello": "world"}', "not a CloudEvent"),
    ],
)
def test_not_a_cloudevent(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message) as caught:
        parse_http({"content-type": "application/json"}, body)
    assert caught.value.status == 400


def test_batch_mode_is_unsupported_media_type() -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_http({"content-type": "application/cloudevents-batch+json"}, b"[]")
    assert caught.value.status == 415


@pytest.mark.parametrize("body", [b"", b"not json", b'{"a": 1, "a": 2}'])
def test_binary_data_that_is_not_json_is_kept_as_a_reason(body: bytes) -> None:
    headers, _ = binary(ATTRIBUTES, {})
    _, data = parse_http(headers, body)
    assert isinstance(data, NotJson)


def test_error_messages_never_echo_the_request() -> None:
    secret = "Bearer eyJhbGciOiJSUzI1NiJ9.secret"
    body = json.dumps({"token": secret}).encode()
    with pytest.raises(EnvelopeError) as caught:
        parse_http({"authorization": secret, "content-type": "application/json"}, body)
    assert "secret" not in caught.value.message
