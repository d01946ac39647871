"""A new instance pays only for what it runs: importing `main` loads no cloud or KFP client."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT

HEAVY = [
    "google.cloud.aiplatform",
    "google.cloud.aiplatform_v1",
    "kfp",
    "kfp_server_api",
    "google.cloud.firestore",
    "google.cloud.pubsub_v1",
    "google.cloud.storage",
    "pydantic",
    "croniter",
]


def test_importing_main_loads_no_heavy_client() -> None:
    probe = f"import json, sys, main; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(loaded.stdout) == []
