"""The production path on a KFP cluster, end to end through functions-framework as deployed:
an event → a run on the cluster (the KFP API fake) → the exit step's completion notice over the
Pub/Sub emulator → `handle_completion` → one result on the results topic, with the run's metrics
and the pipeline version. Run keys holding `+` and `%` start exactly one run each.

The exit step is `pipelines.notify.publish_completion`, the function compiled into every
`notify: true` pipeline, called here with the parameters the cluster received for the run (so
the backend must have passed the completion topic and the run key) and the final status KFP
gives it (`COMPLETE`, research/kfp.md §5); the emulator pushes the completions topic to
`handle_completion` as the deployment's push subscription does. A Cloud Storage notification
that runs out of attempts while the cluster is down becomes a dead letter, and a reconcile pass
starts its one run once the cluster answers again.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from tests.support import env_for, free_port, functions_framework, server, serving, storage_event
from tests.support.fakes import schema_file
from tests.support.kfp_fake import FakeKfp
from tests.support.pubsub import held, pull
from tests.support.stack import deployed

pytestmark = pytest.mark.slow  # servers in subprocesses

ROUTES = """
version: 1
pipelines:
  echo:
    source: tests.support.echo_pipeline:echo_pipeline
    backend: kfp
    notify: true
    pipeline_root: gs://acme-pipelines/root
routes:
  - name: survey-files
    when: {storage: {bucket: acme-survey-landing}}
    run: {pipeline: echo, params: {message: "{object.name}"}}
"""


@pytest.fixture
def cluster(pubsub_emulator: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    (tmp_path / "routes.yaml").write_text(ROUTES)
    fake = FakeKfp()
    with (
        serving(fake) as kfp_url,
        deployed(tmp_path, tmp_path / "routes.yaml", KFP_TRIGGER_KFP_HOST=kfp_url) as stack,
    ):
        yield {**stack, "fake": fake, "landing": tmp_path / "landing", "state": tmp_path}


def deliver(cluster: dict[str, Any], name: str) -> dict[str, Any]:
    headers, body = storage_event("acme-survey-landing", name, generation=3)
    answer = requests.post(cluster["events_url"], data=body, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    decisions: dict[str, Any] = answer.json()["decisions"][0]
    return decisions


def the_run_ends(cluster: dict[str, Any], run_id: str, metrics: dict[str, float]) -> None:
    """What the cluster does: the run succeeds, its metrics component wrote its file under the
    pipeline root, and the exit step publishes the notice with the parameters the run got."""
    from kfp import dsl

    from pipelines.notify import publish_completion

    fake: FakeKfp = cluster["fake"]
    fake.states[run_id] = "SUCCEEDED"
    written = cluster["landing"] / "acme-pipelines" / "root" / "echo-pipeline-notified" / run_id / "evaluate"
    (written / "a1b2c3").mkdir(parents=True)
    (written / "a1b2c3" / "metrics").write_text(json.dumps(metrics))
    parameters = fake.runs[run_id]["runtime_config"]["parameters"]
    status = dsl.PipelineTaskFinalStatus(
        "COMPLETE", f"echo-pipeline-notified-{run_id[:8]}", "exit", None, None
    )
    publish_completion(parameters["completion_topic"], parameters["run_key"], status)


@pytest.mark.parametrize("name", ["responses/a+b.csv", "responses/100%.csv"], ids=["plus", "percent"])
def test_an_event_runs_once_on_the_cluster_and_its_result_carries_the_metrics(
    cluster: dict[str, Any], name: str
) -> None:
    first = deliver(cluster, name)
    assert first["outcome"] == "run"
    assert deliver(cluster, name)["outcome"] == "duplicate", "a redelivery starts nothing"
    fake: FakeKfp = cluster["fake"]
    (run_id,) = fake.runs
    assert fake.runs[run_id]["display_name"] == first["run_key"]

    the_run_ends(cluster, run_id, {"accuracy": 0.81, "auc": 0.77})
    (message,) = pull(cluster["results"], 1, wait=90)
    result = json.loads(message.data)
    # the published contract, as the product reads it
    jsonschema.validate(result, schema_file("run-finished.v2.schema.json"))
    assert (result["run_key"], result["run_id"], result["state"]) == (first["run_key"], run_id, "SUCCEEDED")
    assert result["metrics"] == {"accuracy": 0.81, "auc": 0.77}
    assert len(result["version"]) == 64
    assert deliver(cluster, name)["outcome"] == "duplicate"
    assert pull(cluster["results"], 1, wait=3) == [], "one result per run"
    assert len(fake.runs) == 1


VERTEX_ROUTES = ROUTES.replace("backend: kfp", "backend: vertex").replace(
    "    pipeline_root: gs://acme-pipelines/root\n", ""
)


@pytest.fixture
def vertex(pubsub_emulator: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    from tests.support import service_account, token_endpoint
    from tests.support.vertex_fake import FakeVertex

    (tmp_path / "routes.yaml").write_text(VERTEX_ROUTES)
    fake = FakeVertex()
    with serving(fake) as vertex_url, serving(token_endpoint) as token_url:
        where = {
            "GOOGLE_APPLICATION_CREDENTIALS": str(service_account(tmp_path, f"{token_url}/token")),
            "KFP_TRIGGER_VERTEX_PROJECT": "acme-analytics",
            "KFP_TRIGGER_VERTEX_LOCATION": "europe-west1",
            "KFP_TRIGGER_VERTEX_PIPELINE_ROOT": "gs://acme-pipelines/vertex",
            "KFP_TRIGGER_VERTEX_ENDPOINT": vertex_url,
        }
        with deployed(tmp_path, tmp_path / "routes.yaml", **where) as stack:
            yield {**stack, "fake": fake}


@pytest.mark.parametrize("name", ["responses/a+b.csv", "responses/100%.csv"], ids=["plus", "percent"])
def test_an_event_runs_once_on_vertex_and_its_result_carries_the_metrics(
    vertex: dict[str, Any], name: str
) -> None:
    from kfp import dsl

    from pipelines.notify import publish_completion

    first = deliver(vertex, name)
    assert first["outcome"] == "run"
    assert deliver(vertex, name)["outcome"] == "duplicate"
    fake = vertex["fake"]
    (job_id,) = fake.jobs
    job = fake.jobs[job_id]
    assert job["displayName"] == first["run_key"]
    fake.finish(job_id, "PIPELINE_STATE_SUCCEEDED", {"evaluate": {"accuracy": 0.81, "auc": 0.77}})
    parameters = job["runtimeConfig"]["parameterValues"]
    status = dsl.PipelineTaskFinalStatus("SUCCEEDED", job["name"], "exit", None, None)
    publish_completion(parameters["completion_topic"], parameters["run_key"], status)

    (message,) = pull(vertex["results"], 1, wait=90)
    result = json.loads(message.data)
    jsonschema.validate(result, schema_file("run-finished.v2.schema.json"))
    assert (result["run_key"], result["run_id"], result["state"]) == (
        first["run_key"],
        job["name"],
        "SUCCEEDED",
    )
    assert result["metrics"] == {"accuracy": 0.81, "auc": 0.77}
    assert len(result["version"]) == 64
    assert deliver(vertex, name)["outcome"] == "duplicate"
    assert pull(vertex["results"], 1, wait=3) == [], "one result per run"
    assert len(fake.jobs) == 1
    for authorization in fake.authorizations:  # the GAPIC client signs its own JWT with the key
        scheme, _, token = authorization.partition(" ")
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert (scheme, claims["iss"]) == ("Bearer", "kfpt-runtime@acme-analytics.iam.gserviceaccount.com")


@pytest.mark.parametrize("backend", ["kfp", "vertex"])
@pytest.mark.parametrize("engine", ["silent", "refused"])
def test_an_engine_that_hangs_or_refuses_is_a_retry_within_the_timeout(
    tmp_path: Path, backend: str, engine: str
) -> None:
    """503 (Eventarc redelivers) within KFP_TRIGGER_BACKEND_TIMEOUT_SECONDS, never a hang or a 500."""
    import socket
    import time

    from tests.support import service_account

    routes = ROUTES if backend == "kfp" else VERTEX_ROUTES
    (tmp_path / "routes.yaml").write_text(routes.replace("    notify: true\n", ""))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if engine == "silent":
            silent.listen(16)  # connections are accepted by the kernel; nothing ever answers
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        where = (
            {"KFP_TRIGGER_KFP_HOST": address}
            if backend == "kfp"
            else {
                "GOOGLE_APPLICATION_CREDENTIALS": str(service_account(tmp_path, f"{address}/token")),
                "KFP_TRIGGER_VERTEX_PROJECT": "acme-analytics",
                "KFP_TRIGGER_VERTEX_LOCATION": "europe-west1",
                "KFP_TRIGGER_VERTEX_PIPELINE_ROOT": "gs://acme-pipelines/vertex",
                "KFP_TRIGGER_VERTEX_ENDPOINT": address,
            }
        )
        env = env_for(
            tmp_path, routes=tmp_path / "routes.yaml", KFP_TRIGGER_BACKEND_TIMEOUT_SECONDS="2", **where
        )
        port = free_port()
        with server(functions_framework("handle_event", port), env, port, tmp_path / "server.log") as url:
            headers, body = storage_event("acme-survey-landing", "responses/a.csv")
            started = time.monotonic()
            answer = requests.post(url, data=body, headers=headers, timeout=60)
            took = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"]
    assert took < 15, f"answered after {took:.1f} s"


def test_a_forged_notice_moves_nothing_and_the_engines_word_is_published(cluster: dict[str, Any]) -> None:
    """Anything that may publish to the completions topic can send a notice. One that says
    SUCCEEDED for a run the cluster reports RUNNING leaves it RUNNING and publishes nothing; when
    the run really ends, the result says what the cluster says."""
    from google.cloud.pubsub_v1 import PublisherClient

    from functions.bootstrap import ledger_from
    from pipelines.notice import Notice

    first = deliver(cluster, "responses/forged.csv")
    fake: FakeKfp = cluster["fake"]
    (run_id,) = fake.runs
    fake.states[run_id] = "RUNNING"
    forged = Notice(first["run_key"], "SUCCEEDED", job="forged").encode()
    topic = cluster["completions_topic"]
    PublisherClient().publish(topic, forged, run_key=first["run_key"]).result(timeout=30)
    assert pull(cluster["results"], 1, wait=8) == [], "nothing is published on a forged notice"
    ledger = ledger_from(f"sqlite:///{cluster['state'] / 'ledger.sqlite3'}")
    record = ledger.get(first["run_key"])
    assert record is not None
    assert record.state.value == "SUBMITTED"
    trail = [d for d in ledger.trail(first["run_key"]) if d.event_type == "completion notice"]
    assert trail, "each delivery of the notice is recorded"
    assert {d.outcome.value for d in trail} == {"retry"}

    fake.states[run_id] = "FAILED"  # the run really ends; the forged notice, delivered again, makes us look
    message = result_after_passes(cluster)  # the emulator retries at once: soon it is a dead letter
    assert json.loads(message.data)["state"] == "FAILED", "the engine's word, not the notice's"


def result_after_passes(cluster: dict[str, Any]) -> Any:
    """The next result, with a reconcile pass every few seconds meanwhile (it sends dead letters on)."""
    for _ in range(30):
        requests.post(cluster["reconcile_url"], timeout=120).raise_for_status()
        if found := pull(cluster["results"], 1, wait=3):
            return found[0]
    raise AssertionError("no result within 30 passes")


def notify(cluster: dict[str, Any], name: str, generation: int) -> None:
    """Cloud Storage's notification of an object written (payload JSON_API_V1; attributes as
    python-docs-samples storage/cloud-client/notification_polling.py reads them)."""
    from google.cloud.pubsub_v1 import PublisherClient

    bucket = "acme-survey-landing"
    resource = {"kind": "storage#object", "bucket": bucket, "name": name, "generation": str(generation)}
    attributes = {"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1", "bucketId": bucket}
    attributes |= {"objectId": name, "objectGeneration": str(generation)}
    data = json.dumps(resource | {"metageneration": "1", "size": "10"}).encode()
    PublisherClient().publish(cluster["storage_topic"], data, **attributes).result(timeout=30)


def test_an_event_out_of_attempts_runs_once_the_deployment_is_mended(cluster: dict[str, Any]) -> None:
    """A deployment whose routes.yaml does not load answers every delivery 500 before anything is
    recorded; the notification runs out of attempts and is dead-lettered. Once routes.yaml is
    mended, a reconcile pass sends it on: one run, and the letter is acknowledged."""
    routes = cluster["state"] / "routes.yaml"
    good = routes.read_text()
    routes.write_text(good.replace("routes:", "routez:"))
    notify(cluster, "responses/while-broken.csv", 7)
    deadline = time.monotonic() + 90
    while not held(cluster["dead_letters"]):  # the emulator's five attempts, each answered 500
        assert time.monotonic() < deadline, "no dead letter after five refused attempts"
        time.sleep(1)
    fake: FakeKfp = cluster["fake"]
    assert fake.runs == {}
    routes.write_text(good)
    answer = requests.post(cluster["reconcile_url"], timeout=120).json()
    assert answer["finished"] == 1, answer
    (run,) = fake.runs.values()
    assert run["display_name"] == "survey-files/acme-survey-landing/responses/while-broken.csv#7"
    assert held(cluster["dead_letters"]) == 0, "the letter was acknowledged"
