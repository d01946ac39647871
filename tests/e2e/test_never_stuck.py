"""Never stuck, never double (issue 14 items 1, 3 and 4), through functions-framework serving the
targets exactly as Cloud Functions runs them, on the SQLite ledger and kfp.local.

- a coalescing route: a late redelivery of an object whose batch already started starts nothing;
- a manifest that never becomes ready gets a final recorded skip after `batch.max_wait`;
- poison runs (a status lookup that fails for good, a removed backend, a queued run whose route
  was removed) are reported by every reconcile pass, which still starts what it can, and are
  recorded FAILED after three passes, their results published.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from functions.adapters.sqlite.ledger import SqliteLedger
from functions.service.limits import PAUSED
from functions.service.records import NewRun
from pipelines.backend import RunState
from tests.support import completion_event, env_for, free_port, functions_framework, server, structured

pytestmark = pytest.mark.slow  # servers in subprocesses

ROUTES = """
version: 1
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: windows
    when: {storage: {bucket: window-bucket, object: "{day}/{part}"}}
    run: {pipeline: echo, run_key: "{route}/{day}"}
    limits: {coalesce: 1s}
  - name: manifests
    when:
      storage: {bucket: batch-bucket, object: "{batch}/_MANIFEST.json", batch: {manifest: true, max_wait: 1m}}
    run: {pipeline: echo}
  - name: files
    when: {storage: {bucket: file-bucket}}
    run: {pipeline: echo}
"""
TARGETS = ("handle_event", "handle_completion", "reconcile")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The three targets, each served by its own functions-framework process on one state dir."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    env = env_for(tmp_path, routes, KFP_TRIGGER_RECONCILE_GRACE_SECONDS="0")
    with ExitStack() as stack:
        urls = {}
        for target in TARGETS:
            port = free_port()
            command = functions_framework(target, port)
            urls[target] = stack.enter_context(server(command, env, port, tmp_path / f"{target}.log"))
        yield urls, tmp_path


def finalized(bucket: str, name: str, event_id: str, age: float = 0.0) -> tuple[dict[str, str], bytes]:
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": "google.cloud.storage.object.v1.finalized",
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "time": datetime.fromtimestamp(time.time() - age, UTC).isoformat(),
    }
    return structured(attributes, {"bucket": bucket, "name": name, "generation": "1", "size": "10"})


def post(url: str, request: tuple[dict[str, str], bytes] | None = None) -> requests.Response:
    headers, body = request or ({"content-type": "application/json"}, b"{}")
    return requests.post(url, data=body, headers=headers, timeout=60)


def results(state: Path) -> dict[str, dict[str, object]]:
    path = state / "results.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return {event["subject"]: event["data"] for event in map(json.loads, lines)}


def test_a_late_redelivery_of_an_object_in_a_started_batch_starts_nothing(
    served: tuple[dict[str, str], Path],
) -> None:
    urls, state = served
    first = post(urls["handle_event"], finalized("window-bucket", "d1/a.csv", "a")).json()
    (joined,) = first["decisions"]
    assert joined["outcome"] == "queued"
    time.sleep(1.2)  # the 1-second window closes
    assert post(urls["reconcile"]).json()["finished"] == 1, "the batch starts"
    for _ in range(2):  # a late redelivery, then another one window later
        again = post(urls["handle_event"], finalized("window-bucket", "d1/a.csv", "a"))
        (decision,) = again.json()["decisions"]
        assert (again.status_code, decision["outcome"]) == (200, "duplicate")
        assert decision["batch"] == joined["batch"]
        time.sleep(1.1)
    assert post(urls["reconcile"]).json()["skipped"] == []
    ledger = SqliteLedger(state / "ledger.sqlite3")
    assert [run.run_key for run in ledger.runs(route="windows")] == [joined["batch"]], "one run, ever"


def test_a_manifest_that_never_becomes_ready_gets_a_final_skip_after_max_wait(
    served: tuple[dict[str, str], Path],
) -> None:
    urls, state = served
    folder = state / "landing" / "batch-bucket" / "b7"
    folder.mkdir(parents=True)
    (folder / "_MANIFEST.json").write_text('{"objects": ["part-0.csv", "part-1.csv"]}')
    (folder / "part-0.csv").write_text("a\n")
    fresh = post(urls["handle_event"], finalized("batch-bucket", "b7/_MANIFEST.json", "m-1"))
    assert fresh.status_code == 503, "within max_wait: the platform redelivers"
    late = post(urls["handle_event"], finalized("batch-bucket", "b7/_MANIFEST.json", "m-1", age=61))
    assert late.status_code == 200
    (decision,) = late.json()["decisions"]
    assert decision["outcome"] == "skipped"
    assert decision["reason"].startswith("incomplete batch after 61 s (batch.max_wait 60 s): ")
    assert decision["reason"].endswith("missing or empty: 1 of 2 objects: 'b7/part-1.csv'")
    trail = SqliteLedger(state / "ledger.sqlite3").trail("m-1")
    assert [d.outcome for d in trail][-1] == "skipped", "the final decision is recorded"


def test_poison_runs_never_stop_a_reconcile_pass_and_end_failed_after_three(
    served: tuple[dict[str, str], Path],
) -> None:
    urls, state = served
    ledger = SqliteLedger(state / "ledger.sqlite3")
    now = time.time()
    poison = {
        "files/lost": ("files", "local", "deleted-on-the-engine"),  # status: not found
        "files/gone-backend": ("files", "kfp", "run-1"),  # routes.yaml no longer uses kfp
        "removed/queued": ("removed-route", "local", None),  # queued; its route was removed
    }
    for key, (route, backend, run_id) in poison.items():
        run = NewRun(key, route, "echo-pipeline", "v0", backend, {}, f"event-{key}")
        attempt = ledger.claim(run, now, 60).attempt
        if run_id is None:
            ledger.queue(key, attempt, "max_active 1 reached", now)
        else:
            ledger.mark_submitted(key, attempt, run_id, now)
    ledger.set_flag(PAUSED, True)
    queued = post(urls["handle_event"], finalized("file-bucket", "fine.csv", "fine")).json()["decisions"][0]
    assert queued["outcome"] == "queued", "held back by the pause, queued behind the poison run"
    ledger.set_flag(PAUSED, False)

    first = post(urls["reconcile"])
    assert first.status_code == 200
    assert first.json()["finished"] == 1, "the good queued run starts"
    assert {s["run_key"]: s["reason"][-36:] for s in first.json()["skipped"]} == {
        key: " (strike 1 of 3; tried again next pass)"[-36:] for key in poison
    }
    notice = post(urls["handle_completion"], completion_event("files/lost", "SUCCEEDED"))
    assert notice.status_code == 503, "a notice for a poison run asks for a redelivery, never a 500"
    skipped = [s for _ in range(2) for s in post(urls["reconcile"]).json()["skipped"]]
    ended = [s["run_key"] for s in skipped if s["reason"].endswith("(strike 3: recorded FAILED)")]
    assert sorted(ended) == sorted(poison), "the notice was files/lost's second strike"
    for key in poison:
        record = ledger.get(key)
        assert record is not None
        assert record.state is RunState.FAILED, key
    published = results(state)
    assert {key: published[key]["state"] for key in poison} == dict.fromkeys(poison, "FAILED")
    assert post(urls["reconcile"]).json()["skipped"] == [], "nothing is stuck"
