"""Start the real local servers the contract tests run against, and stop them.

Pub/Sub and Firestore: the emulators that ship with `gcloud`. Cloud Storage: the
`gcp-storage-emulator` package. Each starts on a free port in its own process group; the
matching `*_EMULATOR_HOST` variable points every Google client (and every server subprocess the
tests start) at it. Where one cannot start, the test is skipped, except under `CI=true`, where
a missing emulator fails the run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support import free_port

STARTUP_SECONDS = 60


def unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI needs every emulator", pytrace=False)
    pytest.skip(reason)


def commands(port: int) -> dict[str, list[str]]:
    address = f"127.0.0.1:{port}"
    storage = str(Path(sys.executable).parent / "gcp-storage-emulator")
    return {
        "pubsub": ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={address}", "--quiet"],
        "firestore": ["gcloud", "emulators", "firestore", "start", f"--host-port={address}", "--quiet"],
        "storage": [storage, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--quiet"],
    }


@contextmanager
def emulator(name: str, log: Path) -> Iterator[str]:
    """Run one emulator; yield its host:port."""
    port = free_port()
    command = commands(port)[name]
    if shutil.which(command[0]) is None:
        unavailable(f"the {name} emulator needs {command[0]}, which is not on this machine")
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                unavailable(f"the {name} emulator exited at start: {log.read_text()[-1500:]}")
            try:
                requests.get(f"http://{host}/", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                if time.monotonic() > deadline:
                    unavailable(f"the {name} emulator did not answer within {STARTUP_SECONDS} s")
                time.sleep(0.2)
        yield host
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
