"""`handle_event` served by functions-framework exactly as Cloud Functions runs it.

Every golden event in both content modes gets its expected decision; malformed requests get
the answers DESIGN.md prescribes, a quarantine record where it says so, and never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from functions import logs
from tests.support import (
    Case,
    binary,
    cases,
    encodings,
    env_for,
    free_port,
    functions_framework,
    server,
    structured,
)

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

CASES = cases()
CAP = 64 * 1024


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def url(state: Path) -> Iterator[str]:
    port = free_port()
    env = env_for(state, KFP_TRIGGER_MAX_BODY_BYTES=str(CAP))
    with server(functions_framework("handle_event", port), env, port, state / "server.log") as base:
        yield base


def quarantined(state: Path) -> list[dict[str, object]]:
    path = state / "quarantine.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[case.file for case in CASES])
def test_golden_event_over_http(url: str, case: Case) -> None:
    for mode, headers, body, path in encodings(case):
        response = requests.post(url.rstrip("/") + path, data=body, headers=headers, timeout=30)
        assert response.status_code == 200, (mode, response.text)
        answer = response.json()
        if case.outcome in ("ignored", "quarantined"):
            assert answer["outcome"] == case.outcome, mode
            assert case.reason in answer["reason"], mode
            continue
        decision = next(d for d in answer["decisions"] if d["route"] == case.route)
        if case.outcome == "run":
            assert decision["outcome"] in ("run", "duplicate"), (mode, decision)
            assert decision["run_key"] == case.run_key, mode
        else:
            assert decision["outcome"] == "skipped", (mode, decision)
            assert case.reason in decision["reason"], mode


STORAGE = {
    "specversion": "1.0",
    "id": "bad-1",
    "type": "google.cloud.storage.object.v1.finalized",
    "source": "//storage.googleapis.com/projects/_/buckets/some-bucket",
}
PUBSUB = {
    "specversion": "1.0",
    "id": "bad-2",
    "type": "google.cloud.pubsub.topic.v1.messagePublished",
    "source": "//pubsub.googleapis.com/projects/p/topics/gcf-test",
}
SECRET = "Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln"


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}


MALFORMED = {
    "missing ce-id": (_without(binary(STORAGE, {})[0], "ce-id"), b"{}", 400),
    "missing ce-type": (_without(binary(STORAGE, {})[0], "ce-type"), b"{}", 400),
    "not a CloudEvent at all": ({"content-type": "application/json"}, b'{"hello": 1}', 400),
    "structured body not JSON": ({"content-type": "application/cloudevents+json"}, b"{not json", 400),
    "structured nested 10k deep": ({"content-type": "application/cloudevents+json"}, b"[" * 10000, 400),
    "batch mode": ({"content-type": "application/cloudevents-batch+json"}, b"[]", 415),
    "binary body not JSON": (binary(STORAGE, {})[0], b"\x00\xff not json", 200),
    "binary duplicate keys": (binary(STORAGE, {})[0], b'{"bucket": "a", "bucket": "b"}', 200),
    "binary NaN": (binary(STORAGE, {})[0], b'{"size": NaN}', 200),
    "bad base64": (
        *binary(
            PUBSUB, {"message": {"data": "%%%=", "messageId": "1", "publishTime": "2026-01-01T00:00:00Z"}}
        ),
        200,
    ),
    "unknown type": (*binary({**STORAGE, "type": "com.example.unknown"}, {}), 200),
    "over the size cap": (binary(STORAGE, {})[0], b'{"pad": "' + b"x" * CAP + b'"}', 200),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request(url: str, state: Path, name: str) -> None:
    headers, body, status = MALFORMED[name]
    before = len(quarantined(state))
    response = requests.post(url, data=body, headers={**headers, "authorization": SECRET}, timeout=30)
    assert response.status_code == status, response.text
    assert "c2VjcmV0" not in response.text, "the Authorization header is never echoed"
    assert response.headers["content-type"] == "application/json"
    records = quarantined(state)
    if status == 200:
        assert response.json()["outcome"] == "quarantined"
        assert len(records) == before + 1
        assert records[-1]["reason"] == response.json()["reason"]
        assert "authorization" not in json.dumps(records[-1]).lower()
    else:
        assert "error" in response.json()
        assert len(records) == before


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_oversized_body_is_quarantined_with_its_id_type_size_and_hash(
    url: str, state: Path, mode: str
) -> None:
    """Issue 14 item 7: the record named nothing (event {}, size 0, the empty string's hash)."""
    import hashlib

    attributes = {**STORAGE, "id": f"huge-{mode}"}
    data = {"bucket": "some-bucket", "name": "huge.csv", "pad": "x" * (3 * CAP)}
    headers, body = binary(attributes, data) if mode == "binary" else structured(attributes, data)
    response = requests.post(url, data=body, headers=headers, timeout=30)
    assert (response.status_code, response.json()["outcome"]) == (200, "quarantined")
    record = quarantined(state)[-1]
    assert record["event"]["id"] == f"huge-{mode}"
    assert record["event"]["type"] == STORAGE["type"]
    assert (record["body_size"], record["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert record["body_cut_at"] == 4096, "the start of the body is kept, not all of it"
    assert len(record["body_base64"]) < 6000
    (decision,) = requests_trail(state, f"huge-{mode}")
    assert (decision["outcome"], decision["event_type"]) == ("quarantined", STORAGE["type"])
    from functions.bootstrap import ledger_from

    kept = ledger_from(f"sqlite:///{state / 'ledger.sqlite3'}").kept(f"huge-{mode}")
    assert kept is not None, "counted among the quarantined events"
    assert (kept.data, kept.reason) == ("", f"body larger than {CAP} bytes"), "replay: too large"


def requests_trail(state: Path, identifier: str) -> list[dict[str, object]]:
    """The decisions `kfp-trigger explain --json` prints for an identifier."""
    import subprocess

    from tests.support import kfp_trigger

    command = kfp_trigger("explain", identifier, "--json", "--state-dir", str(state))
    printed = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return list(json.loads(printed)["decisions"])


def test_only_post(url: str) -> None:
    response = requests.get(url, timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


FORGING = "\n2026-11-27T00:00:00Z ERROR kfp_trigger forged\r\x1b[2J\x1b[31mred"


@pytest.mark.parametrize(
    ("bucket", "name"),
    [("sample-bucket", "folder/x.csv"), ("nobody-listens", "x.csv"), ("sample-bucket", f"x{FORGING}")],
    ids=["run", "quarantined", "forged-name"],
)
def test_logs_are_one_json_entry_per_line_whatever_the_event_says(
    url: str, state: Path, bucket: str, name: str
) -> None:
    """A log-forging event id (structured mode lets it hold CR/LF and escapes), object name and
    bearer token: the server's lines stay Cloud Logging JSON, untrusted values are cleaned
    fields or labels, and neither the token nor the payload is written."""
    log = state / "server.log"
    before = log.stat().st_size
    event_id = f"forge-{bucket}-{len(name)}{FORGING}"
    attributes = {**STORAGE, "id": event_id, "source": STORAGE["source"].replace("some-bucket", bucket)}
    data = {"bucket": bucket, "name": name, "generation": "4", "payload": "PAYLOAD-7"}
    headers, body = structured(attributes, data)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers |= {"Authorization": SECRET, "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    assert requests.post(url, data=body, headers=headers, timeout=30).status_code == 200
    with open(log, "rb") as handle:
        handle.seek(before)
        written = handle.read().decode()
    assert written, "the request was logged"
    assert not {"\x1b", "\r"} & set(written)
    assert "eyJhbGciOiJSUzI1NiJ9" not in written
    assert "PAYLOAD-7" not in written
    entries = [json.loads(line) for line in written.splitlines()]  # every line is one JSON entry
    for entry in entries:
        assert entry["logging.googleapis.com/trace"].endswith(trace)  # projects/P/traces/T with a project
        assert entry["logging.googleapis.com/labels"]["target"] == "handle_event"
        assert entry["logging.googleapis.com/labels"]["event_id"] == logs.clean(event_id)
        assert "forged" not in entry["message"]
