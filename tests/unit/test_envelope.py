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


def test_peek_names_an_oversized_event_from_its_headers_or_its_first_bytes() -> None:
    """What the quarantine record of a body too large to parse says of it (issue 14 item 7)."""
    from events.envelope import peek

    assert peek({"Ce-Id": "b-1", "ce-type": "t", "content-type": "x"}, b"{}") == {"id": "b-1", "type": "t"}
    structured = b'{"specversion": "1.0", "id": "s-\\u00e9", "type": "t", "data": {"id": "inner"'
    assert peek({}, structured) == {"id": "s-\u00e9", "type": "t"}, "the first occurrence wins"
    push = b'{"message": {"data": "' + b"A" * 1000 + b'", "messageId": "m-1"'
    assert peek({}, push) == {"id": "m-1"}
    assert peek({}, b"\xff\xfe not json at all") == {}


@pytest.mark.parametrize(
    "hostile",
    [(b'"id":"' + b"a" * 1030) * 500, b'"id":"a",' * 60000, (b'"id"' + b" " * 1000 + b"x") * 500],
    ids=["unclosed values", "many keys", "spaced keys"],
)
def test_peek_reads_only_a_bounded_head_of_hostile_bodies(hostile: bytes) -> None:
    """It runs on bodies an attacker sized: it reads at most PEEKED_BYTES (its pattern has no
    nested repetition, so its time is linear in those; measured at about 10 ms on this machine)."""
    from events.envelope import PEEKED_BYTES, peek

    found = peek({}, hostile[: 512 * 1024])
    assert set(found) <= {"id"}
    assert PEEKED_BYTES == 64 * 1024
