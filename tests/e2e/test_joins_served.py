"""Join routes through functions-framework serving the real targets, on the SQLite ledger and on
the Firestore emulator (issue 16's acceptance): the golden sequences of two parts A (the product's
"survey closed" message) and B (the upload's _SUCCESS object) — A→B, B→A, A,A,B, A,B,B, A then
expiry, B again after the run started, two keys interleaved — start one run per key exactly where
expected, and `kfp-trigger explain` tells each story. Then 20 concurrent deliveries of the last
missing part, from separate processes, against the Firestore emulator: one run, 50 rounds."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from functions.bootstrap import ledger_from
from functions.service.records import Outcome
from tests.conftest import PROJECT
from tests.support import (
    env_for,
    free_port,
    functions_framework,
    kfp_trigger,
    message_event,
    server,
    storage_event,
)

pytestmark = pytest.mark.slow  # servers in subprocesses

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: survey-ready
    when:
      join:
        key: "{tenant}/{survey}"
        within: 1h
        parts:
          closed: {pubsub: {topic: product-events}, key: "{data.tenant}/{data.survey}"}
          files: {storage: {bucket: surveys, object: "{tenant}/{survey}/_SUCCESS"}}
    run: {pipeline: echo, params: {message: "{parts.closed.data.survey} of {parts.files.tenant}"}}
  - name: survey-quick
    when:
      join:
        key: "{tenant}/{survey}"
        within: 2s
        parts:
          closed: {pubsub: {topic: quick-events}, key: "{data.tenant}/{data.survey}"}
          files: {storage: {bucket: quick-surveys, object: "{tenant}/{survey}/_SUCCESS"}}
    run: {pipeline: echo}
"""


def part_a(survey: str, event_id: str, tenant: str = "acme", topic: str = "product-events") -> Any:
    return message_event(topic, {"tenant": tenant, "survey": survey}, event_id)


def part_b(survey: str, event_id: str, tenant: str = "acme", bucket: str = "surveys") -> Any:
    return storage_event(bucket, f"{tenant}/{survey}/_SUCCESS", event_id=event_id)


@pytest.fixture(params=["sqlite", "firestore"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """handle_event and reconcile on one ledger; yields their URLs and the CLI's environment."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    extra = {}
    if request.param == "firestore":
        request.getfixturevalue("firestore_emulator")
        extra["KFP_TRIGGER_LEDGER"] = f"firestore://{PROJECT}/joins-{uuid.uuid4().hex[:8]}"
    env = env_for(tmp_path, routes, KFP_TRIGGER_JOIN_GRACE_SECONDS="0", **extra)
    with ExitStack() as stack:
        urls = {}
        for target in ("handle_event", "reconcile"):
            port = free_port()
            urls[target] = stack.enter_context(
                server(functions_framework(target, port), env, port, tmp_path / f"{target}.log")
            )
        yield urls, env


def outcome(url: str, delivery: tuple[dict[str, str], bytes]) -> str:
    headers, body = delivery
    answer = requests.post(url, data=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    (decision,) = answer.json()["decisions"]
    return str(decision["outcome"])


def explain(env: dict[str, str], identifier: str) -> dict[str, Any]:
    done = subprocess.run(
        kfp_trigger("explain", identifier, "--json"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_golden_sequences_start_one_run_per_key_where_expected(
    served: tuple[dict[str, str], dict[str, str]],
) -> None:
    urls, env = served
    event = urls["handle_event"]
    sequences = {
        "A→B": [(part_a, "queued"), (part_b, "run")],
        "B→A": [(part_b, "queued"), (part_a, "run")],
        "A,A,B": [(part_a, "queued"), (part_a, "duplicate"), (part_b, "run")],
        "A,B,B": [(part_a, "queued"), (part_b, "run"), (part_b, "duplicate")],
        "B after the run": [(part_a, "queued"), (part_b, "run"), (part_b, "duplicate")],
    }
    for number, (name, steps) in enumerate(sequences.items()):
        survey = f"s{number}"
        seen = [outcome(event, part(survey, f"{survey}-{i}")) for i, (part, _) in enumerate(steps)]
        assert seen == [expected for _, expected in steps], name
        told = explain(env, f"acme/{survey}")  # the join key: its window, its parts, its run
        (window,) = told["joins"]
        assert window["story"] == f"join 'acme/{survey}' complete: every part arrived", name
        assert len(told["runs"]) == 1, name
        outcomes = sorted(d["outcome"] for d in told["decisions"] if d["route"] == "survey-ready")
        assert outcomes == sorted(expected for _, expected in steps if expected != "duplicate"), name
        for i, (_, expected) in enumerate(steps):  # a repeat's own story names what it repeats
            if expected == "duplicate":
                (repeat,) = explain(env, f"{survey}-{i}")["decisions"]
                assert "arrived already (event" in repeat["reason"], (name, repeat)
    first = explain(env, "s0-0")  # A of A→B: its window is complete, and it names the run
    (window,) = first["joins"]
    assert (window["key"], window["status"], window["missing"]) == ("acme/s0", "complete", [])
    assert set(window["parts"]) == {"closed", "files"}
    (run,) = first["runs"]
    assert run["params"]["message"] == "s0 of acme"

    # two keys interleaved
    assert [
        outcome(event, delivery)
        for delivery in (
            part_a("s9", "x-1", tenant="acme"),
            part_a("s9", "x-2", tenant="globex"),
            part_b("s9", "x-3", tenant="globex"),
            part_b("s9", "x-4", tenant="acme"),
        )
    ] == ["queued", "queued", "run", "run"]
    assert [r["run_key"] for r in explain(env, "acme/s9")["runs"]] == [
        explain(env, "x-4")["runs"][0]["run_key"]
    ]

    # A, then the window expires: reconcile records it, explain tells it
    assert outcome(event, part_a("q1", "q-1", topic="quick-events")) == "queued"
    waiting = explain(env, "q-1")["joins"][0]
    assert waiting["story"].startswith("join 'acme/q1': waiting on `files`, expires")
    time.sleep(2.5)
    assert requests.post(urls["reconcile"], json={}, timeout=60).status_code == 200
    told = explain(env, "q-1")
    assert told["joins"][0]["story"].endswith("missing `files`")
    assert [d["reason"] for d in told["decisions"] if d["event_type"] == "join.expired"] == [
        told["joins"][0]["story"]
    ]
    assert told["runs"] == []
    status = subprocess.run(
        kfp_trigger("status", "--json"), env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(status.stdout)
    assert report["open_joins"] == 0
    assert (
        report["runs"]["survey-ready"]["SUBMITTED"] + report["runs"]["survey-ready"].get("SUCCEEDED", 0) >= 0
    )
    assert sum(report["runs"]["survey-ready"].values()) == 7, "five sequences and two keys: seven runs"


DELIVERIES = 20
ROUNDS = 50


def deliver(url: str, headers: dict[str, str], body: bytes, barrier: Any) -> int:
    """One delivery, redelivered as the platform does until it is acknowledged."""
    barrier.wait()
    for _ in range(600):
        status = requests.post(url, data=body, headers=headers, timeout=60).status_code
        if status < 300:
            return status
        time.sleep(0.05)
    return status


def test_twenty_concurrent_last_parts_start_one_run_fifty_times(
    firestore_emulator: str, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    ledger_url = f"firestore://{PROJECT}/join-race-{uuid.uuid4().hex[:8]}"
    env = env_for(tmp_path, routes, KFP_TRIGGER_LEDGER=ledger_url)
    port = free_port()
    ledger = ledger_from(ledger_url)
    context = multiprocessing.get_context("spawn")
    with (
        server(functions_framework("handle_event", port), env, port, tmp_path / "server.log") as url,
        context.Manager() as manager,
        context.Pool(DELIVERIES) as pool,
    ):
        barrier = manager.Barrier(DELIVERIES)
        for round_number in range(1, ROUNDS + 1):
            survey = f"r{round_number}"
            assert outcome(url, part_a(survey, f"{survey}-a")) == "queued"
            # the last part, as 20 distinct events (uploads finishing twice, retries) at once
            deliveries = [part_b(survey, f"{survey}-b{i}") for i in range(DELIVERIES)]
            answers = pool.starmap(deliver, [(url, h, b, barrier) for h, b in deliveries])
            assert answers == [200] * DELIVERIES, (round_number, answers)
            (window,) = ledger.joins(route="survey-ready", key=f"acme/{survey}")
            assert (window.status, sorted(window.parts)) == ("complete", ["closed", "files"])
            run_decisions = [
                d
                for i in range(DELIVERIES)
                for d in ledger.trail(f"{survey}-b{i}")
                if d.outcome is Outcome.RUN
            ]
            assert len(run_decisions) == 1, (round_number, run_decisions)
    assert len(ledger.runs(route="survey-ready")) == ROUNDS
    assert len(list((tmp_path / "runs").iterdir())) == ROUNDS
