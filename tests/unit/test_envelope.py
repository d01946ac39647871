"""HTTP → CloudEvent: the accepted modes, and clear refusals for what is not a CloudEvent."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.envelope import EnvelopeError, _sdk, binary_mode, parse_http
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


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("[" * 64 + "]" * 64, None),
        ("[" * 65 + "]" * 65, "nested deeper than 64"),
        ('{"a": ' * 65 + "1" + "}" * 65, "nested deeper than 64"),
        ('{"name": "a\\ud800"}', "lone surrogate"),
        ('{"name": "a\\uDFFF"}', "lone surrogate"),
        ('{"a\\ud800": 1}', "lone surrogate"),
        ('{"name": "\\ud83d\\ude00"}', None),  # a pair: one character
        ('{"name": "\ud800"}', "lone surrogate"),  # in text given as str, no escape needed
        ('{"name": "[[[[{{{{"}', None),  # brackets in a string nest nothing
        ('\ufeff{"name": "a"}', "Unexpected UTF-8 BOM"),
    ],
)
def test_strict_json_reads_depth_and_surrogates_from_text_and_bytes(
    document: str, problem: str | None
) -> None:
    """The tree is walked only when the text could break a rule (issue 19): each rule still holds."""
    from events.jsonvalues import loads

    encodable = "\ud800" not in document
    for raw in (document, document.encode("utf-8")) if encodable else (document,):
        if problem is None:
            loads(raw)
        else:
            with pytest.raises(ValueError, match=problem):
                loads(raw)


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


HEADER_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    extra=st.dictionaries(HEADER_NAME.map(lambda name: f"ce-{name}"), HEADER_VALUE, max_size=6),
    required=st.fixed_dictionaries({name: HEADER_VALUE for name in ("ce-id", "ce-source", "ce-type")}),
    content_type=st.one_of(st.none(), st.sampled_from(["application/json", "text/plain", ""]), HEADER_VALUE),
    time=st.one_of(st.none(), HEADER_VALUE),
    body=st.one_of(st.binary(max_size=64), st.just(b'{"bucket": "b", "name": "n"}'), st.just(b"")),
)
def test_the_binary_mode_fast_path_reads_what_the_sdk_reads(
    extra: dict[str, str],
    required: dict[str, str],
    content_type: str | None,
    time: str | None,
    body: bytes,
) -> None:
    """Issue 19: `binary_mode` replaced the CloudEvents SDK on the hot path; on any specversion
    1.0 binary-mode request it gives the SDK's attributes and data."""
    headers = {**extra, **required, "ce-specversion": "1.0"}
    headers.pop("ce-time", None)
    if time is not None:
        headers["ce-time"] = time
    if content_type is not None:
        headers["content-type"] = content_type
    from_sdk = _sdk(dict(headers), body)
    if time is None:
        from_sdk[0].pop("time", None)  # the SDK invents "now" (parse_http drops it)
    assert binary_mode(headers, body) == from_sdk
