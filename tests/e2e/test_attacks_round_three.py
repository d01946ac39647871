"""Hostile input, third round (issue 34), through the real server and CLI: a value that reaches a
parameter without the gate, a permanent problem answered 500, event text that reaches a
terminal or a shell. Each is now a recorded skip or a refusal with its reason, never a 500, and
text is shown as text. (Results' error text: tests/contract/test_kfp_backend.py and
test_vertex_backend.py; the local cancel: test_supersede_engines.py; Slack and shell quoting in
alerts: tests/contract/test_alerts.py; the status page's title: tests/unit/test_status_page.py.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    ROOT,
    binary,
    env_for,
    free_port,
    functions_framework,
    kfp_trigger,
    server,
    storage_event,
)
from tests.support.catalogue import PUBSUB, SECRET, Delivery, Row, check, message

pytestmark = pytest.mark.slow  # a server in a subprocess

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
  sleepy: {source: tests.support.echo_pipeline:sleepy_pipeline}
routes:
  - name: by-field
    when:
      pubsub:
        topic: product-events
        attributes: {schema_version: "3"}
        signature: {secret: PRODUCT_SIGNING_SECRET, max_skew: 5m}
    run: {pipeline: echo, params: {message: {from: data.tenant}}}
  - name: tiered
    when:
      pubsub:
        topic: product-events
        attributes: {schema_version: "4", tier: {gte: 2, lt: 100}}
        signature: {secret: PRODUCT_SIGNING_SECRET, max_skew: 5m}
    run: {pipeline: echo}
  - name: sized
    when:
      pubsub:
        topic: product-events
        attributes: {schema_version: "5"}
        signature: {secret: PRODUCT_SIGNING_SECRET, max_skew: 5m}
    run: {pipeline: sleepy, params: {seconds: {from: data.seconds}}}
  - name: nightly
    when: {schedule: {job: nightly, cron: "0 3 * * *", timezone: Europe/Berlin}}
    run: {pipeline: echo}
  - name: batches
    when: {storage: {bucket: acme-batches, object: "{batch}/_MANIFEST.json", batch: {manifest: true}}}
    run: {pipeline: echo}
"""

FIELD = {
    "a tenant that climbs out of its folder": ("../../other-tenant/x", "'..' folder"),
    "CR/LF": ("a\r\nb", "control characters"),
    "NUL": ("a\u0000b", "control characters"),
    "a right-to-left override": ("\u202egpj.exe", "bidirectional"),
    "a 100 kB string": ("x" * 100_000, "longer than 1024 bytes"),
}
NOT_ASCII = {"Arabic-Indic": "\u0663", "full-width": "\uff13", "Devanagari and Arabic-Indic": "\u0969\u0660"}


def product(number: int, schema: str, data: dict[str, object], **attributes: str) -> Delivery:
    return message(
        f"r3-{schema}-{number}",
        {"event_id": f"p-r3-{schema}-{number}", **data},
        schema_version=schema,
        **attributes,
    )


def tick(event_id: str, published: str) -> tuple[dict[str, str], bytes]:
    body = {
        "message": {
            "data": "",
            "messageId": event_id,
            "publishTime": published,
            "attributes": {"scheduler_job": "nightly"},
        }
    }
    source = PUBSUB["source"].replace("product-events", "kfp-trigger-schedules")
    return binary({**PUBSUB, "id": event_id, "source": source}, body)


ROWS: dict[str, Row] = {
    **{
        f"through a field passed whole: {name}": Row(
            [product(number, "3", {"tenant": value})],
            outcome="skipped",
            reason=problem,
        )
        for number, (name, (value, problem)) in enumerate(FIELD.items())
    },
    **{
        f"a range on an attribute meets {name} digits": Row(
            [product(number, "4", {}, tier=digits)], outcome="skipped", reason="does not meet"
        )
        for number, (name, digits) in enumerate(NOT_ASCII.items())
    },
    "a range on an attribute meets ASCII digits": Row([product(9, "4", {}, tier="30")], outcome="run"),
    "a 400-digit integer into a double": Row(
        [product(0, "5", {"seconds": int("9" * 400)})], outcome="skipped", reason="expected a finite number"
    ),
    **{
        f"a schedule tick at {published}": Row(
            [tick(f"t-{number}", published)], outcome="skipped", reason="could not be planned"
        )
        for number, published in enumerate(["0001-01-01T00:30:00+14:00", "9999-12-31T23:59:59-14:00"])
    },
}

MANIFESTS = {
    "nested 100,000 deep": ('{"objects": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),
    "with a NUL in an entry": ('{"objects": ["part-0.csv\\u0000.exe"]}', "control characters"),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("round-three")
    (state / "routes.yaml").write_text(ROUTES)
    for number, (text, _) in enumerate(MANIFESTS.values()):
        manifest = state / "landing" / "acme-batches" / f"b{number}" / "_MANIFEST.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(text)
    port = free_port()
    env = env_for(state, routes=state / "routes.yaml", PRODUCT_SIGNING_SECRET=SECRET)
    with server(functions_framework("handle_event", port), env, port, state / "server.log") as base:
        yield base


@pytest.mark.parametrize("row", list(ROWS))
def test_row(url: str, row: str) -> None:
    check(url, ROWS[row])


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_a_manifest_that_cannot_be_read_is_a_recorded_skip_not_a_500(url: str, name: str) -> None:
    number = list(MANIFESTS).index(name)
    check(
        url,
        Row(
            [storage_event("acme-batches", f"b{number}/_MANIFEST.json", event_id=f"m-{number}")],
            outcome="skipped",
            reason=MANIFESTS[name][1],
        ),
    )


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(kfp_trigger(*args), capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_routes_check_refuses_a_signed_route_steered_by_an_unsigned_attribute(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        ROUTES.replace(
            'attributes: {schema_version: "4", tier:', 'attributes: {schema_version: "4", googclient_tier:'
        )
    )
    done = cli("routes", "check", str(routes), env=env_for(tmp_path))
    assert done.returncode == 1
    assert (
        "reads the attribute 'googclient_tier', which the signature does not cover"
        in done.stdout + done.stderr
    )


def test_routes_check_refuses_join_parts_one_message_could_meet_twice(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        ROUTES
        + """  - name: both
    when:
      join:
        key: "{data.event_id}"
        within: 1h
        parts:
          first: {pubsub: {topic: product-events, data: {kind: closed}}}
          second: {pubsub: {topic: product-events}}
    run: {pipeline: echo}
"""
    )
    done = cli("routes", "check", str(routes), env=env_for(tmp_path))
    assert done.returncode == 1
    assert "one event could meet both 'first' and 'second'" in done.stdout + done.stderr


def test_explain_shows_an_event_id_s_terminal_escapes_as_text(tmp_path: Path) -> None:
    from functions.adapters.sqlite.ledger import SqliteLedger
    from functions.service.records import DecisionRecord, Outcome

    hostile = "\x1b]0;owned\x07\x1b[2J\u202eevil\r"
    ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    ledger.record(DecisionRecord(2.0, hostile, "k#1", "t", Outcome.SKIPPED, "r", f"id {hostile}", ""))
    shown = cli("explain", hostile, "--state-dir", str(tmp_path), env=env_for(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert not any(character in shown.stdout for character in "\x1b\x07\u202e\r")
    assert "\\x1b]0;owned\\x07" in shown.stdout
    missing = cli("explain", "\x1b[31mnope", "--state-dir", str(tmp_path), env=env_for(tmp_path))
    assert missing.returncode == 1
    assert "\x1b" not in missing.stderr
    assert json.loads(cli("explain", hostile, "--json", "--state-dir", str(tmp_path)).stdout)
