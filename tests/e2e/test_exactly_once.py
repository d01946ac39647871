"""The same storage event delivered 5 times, in sequence and concurrently from separate
processes, through `kfp-trigger dev`: exactly one kfp.local run and one published result."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import env_for, free_port, kfp_trigger, server, storage_event

pytestmark = pytest.mark.slow  # servers and CLI commands in subprocesses

DELIVERIES = 5

# One delivery, retried the way Pub/Sub push does: until it is acknowledged (2xx).
DELIVER = """
import json, sys, time, requests
url, headers, body = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].encode()
for attempt in range(200):
    status = requests.post(url, data=body, headers=headers, timeout=30).status_code
    print(status, flush=True)
    if status < 300:
        break
    time.sleep(0.1)
"""


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    command = kfp_trigger("dev", "--port", str(port))
    with server(command, env_for(tmp_path), port, tmp_path / "dev.log") as url:
        yield url, tmp_path


def published(state: Path) -> list[dict[str, object]]:
    path = state / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_results(state: Path, count: int, timeout: float = 90) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = published(state)
        if len(results) >= count:
            time.sleep(1.5)  # a duplicate would arrive now, if there were one
            return published(state)
        time.sleep(0.3)
    pytest.fail(f"no result within {timeout} s; see {state}/dev.log")


def test_five_deliveries_in_sequence(dev: tuple[str, Path]) -> None:
    url, state = dev
    headers, body = storage_event("some-bucket", "folder/sequential.csv", generation=11)
    statuses = [
        requests.post(f"{url}/handle_event", data=body, headers=headers, timeout=30).status_code
        for _ in range(DELIVERIES)
    ]
    assert statuses == [200] * DELIVERIES
    (result,) = wait_for_results(state, 1)
    assert result["data"]["state"] == "SUCCEEDED"
    assert result["data"]["metrics"] == {"length": len("sequential.csv")}
    assert len(list((state / "runs").iterdir())) == 1


def test_five_concurrent_deliveries_from_separate_processes(dev: tuple[str, Path]) -> None:
    url, state = dev
    headers, body = storage_event("some-bucket", "folder/concurrent.csv", generation=12)
    deliveries = [
        subprocess.Popen(
            [sys.executable, "-c", DELIVER, f"{url}/handle_event", json.dumps(headers), body.decode()],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(DELIVERIES)
    ]
    answers = [delivery.communicate(timeout=60)[0].split() for delivery in deliveries]
    assert all(answer[-1] == "200" for answer in answers), answers
    assert all(set(answer) <= {"200", "429"} for answer in answers), "only ack or not-yet"
    (result,) = wait_for_results(state, 1)
    assert result["data"]["state"] == "SUCCEEDED"
    assert len(list((state / "runs").iterdir())) == 1
    runs = subprocess.run(
        kfp_trigger("runs", "--json", "--state-dir", str(state)), capture_output=True, text=True, check=True
    )
    (run,) = json.loads(runs.stdout)
    assert run["state"] == "SUCCEEDED"
    assert run["published"] is True


def test_a_web_page_cannot_drive_the_dev_server(dev: tuple[str, Path]) -> None:
    """With authentication off, `kfp-trigger dev` still answers local tools only: a browser's
    cross-site post (an Origin, or a text/plain body) starts nothing."""
    url, state = dev
    headers, body = storage_event("some-bucket", "folder/cross-site.csv")
    from_a_page = requests.post(
        f"{url}/handle_event", data=body, headers={**headers, "Origin": "https://evil.example"}, timeout=30
    )
    assert from_a_page.status_code == 403
    structured = json.dumps({"specversion": "1.0", "id": "x", "type": "t", "source": "s"}).encode()
    plain = requests.post(
        f"{url}/handle_event", data=structured, headers={"content-type": "text/plain"}, timeout=30
    )
    assert plain.status_code == 415
    assert published(state) == []
