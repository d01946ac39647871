"""The completion-notice exit handler: any catalog pipeline, wrapped, publishes its own end to
Pub/Sub (the emulator) through kfp.local, on success and on failure."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from events.rules import PipelineDef
from pipelines.backend import RunState, Submission
from pipelines.catalog import build_pipeline
from pipelines.local.backend import LocalBackend
from pipelines.notice import Notice
from tests.support.pubsub import pull, topic_with_subscription

pytestmark = pytest.mark.slow  # a real kfp.local run of a notified pipeline


@pytest.fixture
def topic(pubsub_emulator: str) -> tuple[str, str]:
    return topic_with_subscription("completions")


def test_a_notified_pipeline_publishes_its_end(topic: tuple[str, str], tmp_path: Path) -> None:
    topic_path, subscription = topic
    definition = PipelineDef(
        "echo", "tests.support.echo_pipeline:echo_pipeline", None, "local", None, {}, notify=True
    )
    pipeline = build_pipeline(definition, tmp_path, tmp_path / "packages")
    assert "completion_topic" in pipeline.inputs
    assert "exit-handler-1" in pipeline.package.read_text()
    backend = LocalBackend(tmp_path / "runs", completion_topic=f"pubsub://{topic_path}")

    ok = backend.submit(Submission("route/ok#1", "route", pipeline, {"message": "four"}))
    failing = backend.submit(Submission("route/fail#1", "route", pipeline, {"fail": True}))
    # The exit step writes the notice itself (this package is not in its image): the one decoder reads it.
    received = {m.attributes["run_key"]: Notice.decode(json.loads(m.data)) for m in pull(subscription, 2)}

    assert received["route/ok#1"].state == "SUCCEEDED"
    assert received["route/ok#1"].run_key == "route/ok#1"
    assert received["route/fail#1"].state == "FAILED"
    assert set(received) == {"route/ok#1", "route/fail#1"}
    assert pull(subscription, 1, wait=4) == [], "one notice per run: from the exit task only"
    deadline = time.monotonic() + 30
    while not backend.status(ok).state.terminal and time.monotonic() < deadline:
        time.sleep(0.2)
    status = backend.status(ok)
    assert status.state is RunState.SUCCEEDED
    assert status.metrics == {"length": 4.0}, "metrics are read from the run's executor outputs"
    assert backend.status(failing).state in (RunState.FAILED, RunState.PENDING)
