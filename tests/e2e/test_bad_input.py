"""The bad-input catalogue (research/reliability.md §4), row by row, through the real server.

Each row sends its requests to `handle_event` served by functions-framework and checks the
answer the catalogue prescribes: 4xx only for what is not a CloudEvent at all; for a delivered
event, 200 with a quarantine record, an ignore, a skip or a duplicate, never a 500. Rows tested
elsewhere through the same server: authentication (tests/e2e/test_auth.py, every target), the
body-size cap and batch mode (test_http_server.py), log forging (test_http_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import binary, structured
from tests.support.catalogue import (
    BINARY_HEADERS,
    EMPTY_STRUCTURED,
    NESTED,
    PUBSUB,
    STORAGE,
    Row,
    catalogue_server,
    check,
    golden,
    message,
    raw,
    storage,
    tick,
)

pytestmark = pytest.mark.slow  # a server in a subprocess

CATALOGUE: dict[str, Row] = {
    "non-POST method": Row([raw(BINARY_HEADERS, b"{}")], 405, method="PUT"),
    **{
        f"binary mode without {header}": Row(
            [raw({k: v for k, v in BINARY_HEADERS.items() if k != header}, b"{}")], 400
        )
        for header in ("ce-id", "ce-source", "ce-type", "ce-specversion")
    },
    "specversion 2.0": Row([raw({**BINARY_HEADERS, "ce-specversion": "2.0"}, b"{}")], 400),
    "structured body empty": Row([raw(EMPTY_STRUCTURED, b"")], 400),
    "structured body not JSON": Row([raw(EMPTY_STRUCTURED, b"<xml/>")], 400),
    "text/plain without ce- headers": Row([raw({"content-type": "text/plain"}, b"hello")], 415),
    "application/xml body of a delivered event": Row(
        [raw({**BINARY_HEADERS, "content-type": "application/xml"}, b"<object/>")],
        reason="not strict JSON: not JSON (Expecting value at position 0)",
    ),
    "unknown ce-type": Row(
        [structured({**STORAGE, "id": "t-1", "type": "com.example.surprise"}, {})],
        reason="unknown event type",
    ),
    "bucket nobody listens to": Row(
        [storage("b-1", "a.csv", bucket="not-allowlisted")], reason="no route listens"
    ),
    "64 KB ce-id": Row([storage("i" * 65536, "a.csv")], reason="'id' is longer than 1024"),
    "push envelope without message": Row(
        [binary({**PUBSUB, "id": "m-0"}, {"subscription": "projects/p/subscriptions/s"})],
        reason="data.message",
    ),
    "attributes of the wrong type": Row(
        [
            binary(
                {**PUBSUB, "id": "m-1"},
                {"message": {"data": "e30=", "publishTime": "2026-11-27T03:00:00Z", "attributes": {"n": 7}}},
            )
        ],
        reason="attributes",
    ),
    **{
        f"base64 with {what}": Row([message(f"b64-{what}", data)], reason="base64")
        for what, data in (
            ("bad padding", "eyJhIjogMX0"),
            ("the URL-safe alphabet", "eyJzdXJ2ZXlfaWQiOiAiPz8_In0-"),
            ("embedded whitespace", "eyJh Ijog MX0="),
        )
    },
    **{
        f"body {what}": Row([raw(BINARY_HEADERS, body)], reason=reason)
        for what, body, reason in (
            ("not UTF-8", b'{"name": "\xff"}', "not strict JSON: not valid UTF-8"),
            ("with a BOM", b'\xef\xbb\xbf{"name": "a"}', "not strict JSON: not JSON (Unexpected UTF-8 BOM"),
            ("with an overlong encoding", b'{"name": "\xc0\xaf"}', "not strict JSON: not valid UTF-8"),
            ("with duplicate keys", b'{"name": "a", "name": "b"}', "not strict JSON: duplicate key 'name'"),
            ("with NaN", b'{"size": NaN}', "not strict JSON: NaN is not valid JSON"),
            ("with Infinity", b'{"size": Infinity}', "not strict JSON: Infinity is not valid JSON"),
            ("with 1e400", b'{"size": 1e400}', "not strict JSON: 1e400 is out of range"),
            ("nested 5000 deep", NESTED, "not strict JSON: nested deeper than 64 levels"),
        )
    },
    "a lone surrogate in the name": Row(
        [raw(BINARY_HEADERS, b'{"bucket": "sample-bucket", "name": "a\\ud800"}')],
        reason="not strict JSON: a string holds a lone surrogate",
    ),
    "NUL in the name": Row([storage("nul", "a\x00b.csv")], reason="control characters"),
    **{
        f"object name {what}": Row([storage(f"name-{what}", name)], reason="not an acceptable object name")
        for what, name in (
            ("with ../", "folder/../secret.csv"),
            ("with a leading /", "/etc/passwd"),
            ("with a backslash", "folder\\x.csv"),
            ("with //", "folder//x.csv"),
            ("with U+202E", "invoice\u202ecsv.exe"),
            ("with a zero-width space", "fol\u200bder/x.csv"),
            ("of 1025 bytes", "x" * 1025),
        )
    },
    "a non-NFC name is kept exactly": Row([storage("nfd", "caf\u0065\u0301.csv")], outcome="run"),
    "metadata-only update, archive, delete": Row(
        [
            structured({**STORAGE, "id": f"m-{kind}", "type": f"google.cloud.storage.object.v1.{kind}"}, {})
            for kind in ("metadataUpdated", "archived", "deleted")
        ],
        outcome="ignored",
    ),
    "the same name and generation again": Row(
        [storage("g-1", "same.csv"), storage("g-1-again", "same.csv")],
        answers=[(200, "run"), (200, "duplicate")],
    ),
    "an older generation after a newer one": Row(
        [storage("gen-5", "gen.csv", generation="5"), storage("gen-4", "gen.csv", generation="4")],
        answers=[(200, "run"), (200, "skipped")],
    ),
    "a 0-byte object on a gated route": Row(
        [storage("zero", "z.csv", bucket="gated-bucket", size="0", contentType="text/csv")], outcome="skipped"
    ),
    "an unexpected content type on a gated route": Row(
        [storage("ct", "z.exe", bucket="gated-bucket", contentType="application/x-msdownload")],
        outcome="skipped",
    ),
    "a failed BigQuery job, a job still running, another method": Row(
        [
            golden(file)
            for file in (
                "audit/bigquery-job-failed.json",
                "audit/bigquery-jobchange-running.json",
                "audit/LogEntryData-pubsubCreateTopic.json",
            )
        ],
        outcome="ignored",
    ),
    "a duplicate Scheduler tick": Row(
        [tick("tick-1", 4), tick("tick-2", 9)], answers=[(200, "run"), (200, "duplicate")]
    ),
    "a product message of an unknown schema version": Row(
        [message("v9", {"survey_id": "s-1"}, event_id="p-9", schema_version="9")], outcome="skipped"
    ),
    "a product message without a signature": Row(
        [message("u-1", {"event_id": "p-u", "survey_id": "s"}, signed=None, schema_version="1")],
        reason="signature: unsigned",
    ),
    "a product message signed with another key": Row(
        [message("u-2", {"event_id": "p-k", "survey_id": "s"}, key="guessed", schema_version="1")],
        reason="signature: the signature does not match",
    ),
    "a product message replayed after the window (stale timestamp)": Row(
        [message("u-3", {"event_id": "p-s", "survey_id": "s"}, signed=3600, schema_version="1")],
        reason="s ago, more than 300 s (a replay or a skewed clock)",
    ),
    "a product message replayed inside the window (new messageId, same event_id)": Row(
        [
            message("r-1", {"event_id": "p-r", "survey_id": "s"}, schema_version="1"),
            message("r-2", {"event_id": "p-r", "survey_id": "s"}, schema_version="1"),
        ],
        answers=[(200, "run"), (200, "duplicate")],
    ),
    "template and format strings in a value": Row(
        [
            message(
                "tpl",
                {"survey_id": "{0.__class__}{{7*7}}${jndi:ldap:x}$(id)", "event_id": "p-tpl"},
                schema_version="1",
            )
        ],
        outcome="run",
    ),
    "a time far in the future": Row(
        [
            structured(
                {**STORAGE, "id": "future", "time": "2999-01-01T00:00:00Z"},
                {"bucket": "sample-bucket", "name": "future.csv", "generation": "1"},
            )
        ],
        outcome="run",
    ),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with catalogue_server(tmp_path_factory.mktemp("catalogue")) as base:
        yield base


@pytest.mark.parametrize("row", list(CATALOGUE))
def test_row(url: str, row: str) -> None:
    check(url, CATALOGUE[row])
