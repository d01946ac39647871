"""Shared test helpers: golden cases, CloudEvent encodings, and server subprocesses."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
ROUTES = DATA / "routes.yaml"


@dataclass(frozen=True)
class Case:
    file: str
    outcome: str
    route: str = ""
    run_key: str = ""
    reason: str = ""
    attributes: Mapping[str, str] | None = None

    @property
    def document(self) -> Any:
        return json.loads((DATA / self.file).read_text())

    @property
    def legacy(self) -> bool:
        return self.file.startswith("legacy/")

    def cloudevent(self) -> tuple[dict[str, str], object]:
        """(attributes, data) of this golden as a CloudEvent."""
        document = self.document
        if "specversion" in document:
            attributes = {k: str(v) for k, v in document.items() if k not in ("data", "data_base64")}
            attributes.pop("datacontenttype", None)
            return attributes, document.get("data")
        assert self.attributes is not None, f"{self.file} needs attributes in cases.yaml"
        attributes = {"specversion": "1.0", "id": f"golden-{Path(self.file).stem}", **self.attributes}
        return attributes, document


@dataclass(frozen=True)
class Reply:
    """What the HTTP target would answer for what a use case did."""

    status: int
    body: Mapping[str, Any]


def call(use_case: Any, services: Any, headers: Mapping[str, str], body: bytes) -> Reply:
    """Parse a request as the targets do, run `use_case` on it, and answer as the targets would."""
    from events.envelope import parse_http
    from functions.targets import status_of

    handled = use_case(services, *parse_http(dict(headers), body), body)
    return Reply(status_of(handled), handled.body)


def cases() -> list[Case]:
    return [Case(**raw) for raw in yaml.safe_load((DATA / "cases.yaml").read_text())]


def binary(attributes: Mapping[str, str], data: object) -> tuple[dict[str, str], bytes]:
    headers = {f"ce-{key}": value for key, value in attributes.items()}
    headers["content-type"] = "application/json"
    return headers, json.dumps(data).encode()


def structured(attributes: Mapping[str, str], data: object) -> tuple[dict[str, str], bytes]:
    document = {**attributes, "datacontenttype": "application/json", "data": data}
    return {"content-type": "application/cloudevents+json"}, json.dumps(document).encode()


def encodings(case: Case) -> Iterator[tuple[str, dict[str, str], bytes, str]]:
    """Every way this golden can arrive, as (mode, headers, body, URL path): both CloudEvent
    content modes and the deployment's push subscription, or as a legacy body."""
    if case.legacy:
        yield "legacy", {"content-type": "application/json"}, (DATA / case.file).read_bytes(), "/"
        return
    attributes, data = case.cloudevent()
    yield ("binary", *binary(attributes, data), "/")
    yield ("structured", *structured(attributes, data), "/")
    if (push := pushed(attributes, data)) is not None:
        yield ("push", *push)


def _b64json(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def pushed(attributes: Mapping[str, str], data: object) -> tuple[dict[str, str], bytes, str] | None:
    """The same event as a deployment's own push subscription posts it (events/push.py): a
    message on a topic at /projects/P/topics/T, a Cloud Storage notification (attributes as
    python-docs-samples storage/cloud-client/notification_polling.py reads them), a log entry
    a Logging sink routed; None for a type no push carries."""
    from events.push import AUDIT_LOG_PATH, STORAGE_PATH, STORAGE_TYPES

    kind, source, when = attributes["type"], attributes["source"], attributes.get("time", "")
    message: dict[str, Any] = {"messageId": attributes["id"]} | ({"publishTime": when} if when else {})
    if kind.startswith("google.cloud.pubsub.") and isinstance(data, dict):
        path = "/" + source.removeprefix("//pubsub.googleapis.com/")
        message |= data["message"]
        body = {"message": message, "subscription": data.get("subscription", "projects/p/subscriptions/s")}
    elif kind.startswith("google.cloud.storage.") and isinstance(data, dict):
        path, event_type = STORAGE_PATH, {ce: notice for notice, ce in STORAGE_TYPES.items()}[kind]
        notice = {"eventType": event_type, "payloadFormat": "JSON_API_V1", "bucketId": str(data["bucket"])}
        notice |= {"objectId": str(data["name"]), "objectGeneration": str(data.get("generation", ""))}
        message |= {"data": _b64json(data), "attributes": notice | ({"eventTime": when} if when else {})}
        body = {"message": message, "subscription": "projects/p/subscriptions/p-storage"}
    elif kind.startswith("google.cloud.audit."):
        path = AUDIT_LOG_PATH
        message |= {"data": _b64json(data), "attributes": {"logging.googleapis.com/timestamp": when}}
        body = {"message": message, "subscription": "projects/p/subscriptions/p-bigquery"}
    else:
        return None
    return {"content-type": "application/json"}, json.dumps(body).encode(), path


def storage_event(
    bucket: str, name: str, generation: int = 1, event_id: str = "e-1"
) -> tuple[dict[str, str], bytes]:
    """A binary-mode `finalized` delivery (no time, no content type), as the HTTP body."""
    from events.eventarc import object_finalized

    headers, data = object_finalized(bucket, name, generation=generation, size=10, event_id=event_id)
    return headers, json.dumps(data).encode()


def message_event(topic: str, data: Mapping[str, object], event_id: str) -> tuple[dict[str, str], bytes]:
    """A Pub/Sub message with JSON `data` on `topic` (a short name in project `local`), in binary mode."""
    from events.eventarc import message_published

    headers, body = message_published(
        f"projects/local/topics/{topic}", json.dumps(data).encode(), message_id=event_id
    )
    return headers, json.dumps(body).encode()


def table_event(table: str, job: str, event_id: str) -> tuple[dict[str, str], bytes]:
    """A BigQuery load job into `table` (project.dataset.table) completed: the audit log entry of
    tests/data/audit/bigquery-jobchange-done.json with this table, job and event id, binary mode."""
    document = json.loads((DATA / "audit" / "bigquery-jobchange-done.json").read_text())
    project, dataset, name = table.split(".")
    entry = document["data"]
    change = entry["protoPayload"]["metadata"]["jobChange"]["job"]
    change["jobName"] = entry["protoPayload"]["resourceName"] = f"projects/{project}/jobs/{job}"
    change["jobConfig"]["loadConfig"]["destinationTable"] = (
        f"projects/{project}/datasets/{dataset}/tables/{name}"
    )
    attributes = {k: v for k, v in document.items() if k not in ("data", "datacontenttype")}
    return binary(attributes | {"id": event_id}, entry)


def completion_event(run_key: str, state: str, message_id: str = "n-1") -> tuple[dict[str, str], bytes]:
    """A completion notice as Eventarc delivers it from the completions topic."""
    from events.eventarc import message_published
    from pipelines.notice import Notice

    headers, data = message_published(
        "projects/local/topics/kfp-trigger-completions",
        Notice(run_key, state).encode(),
        message_id=message_id,
        published=datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
    )
    return headers, json.dumps(data).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(state_dir: Path, routes: Path = ROUTES, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFP_TRIGGER_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "KFP_TRIGGER_ROUTES": str(routes),
            "KFP_TRIGGER_STATE_DIR": str(state_dir),
            "KFP_TRIGGER_LANDING_DIR": str(state_dir / "landing"),
            "KFP_TRIGGER_AUTH": "none",
            **extra,
        }
    )
    return env


@contextmanager
def server(
    command: list[str], env: Mapping[str, str], port: int, log: Path, cwd: Path = ROOT
) -> Iterator[str]:
    """Start a server subprocess in `cwd` (output to `log`), wait until it answers, yield its URL,
    stop it."""
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
            try:
                requests.get(url, timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a busy machine
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def functions_framework(target: str, port: int) -> list[str]:
    """The command Cloud Functions runs: functions-framework serving one target of main.py."""
    executable = Path(sys.executable).parent / "functions-framework"
    return [str(executable), "--target", target, "--source", str(ROOT / "main.py"), "--port", str(port)]


def team_project(folder: Path, routes: str) -> Path:
    """A team's folder: `routes` as routes.yaml beside pipelines/echo.py (the echo pipeline); its path."""
    import shutil

    (folder / "pipelines").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "tests" / "support" / "echo_pipeline.py", folder / "pipelines" / "echo.py")
    (folder / "routes.yaml").write_text(routes)
    return folder / "routes.yaml"


def kfp_trigger(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "kfp-trigger"), *args]


@contextmanager
def serving(app: Any, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve a WSGI app (a test fake) on a free local port in a thread; yield its base URL.

    With `tls` (certificate, key), the server speaks HTTPS.
    """
    import threading

    from werkzeug.serving import make_server

    context = (str(tls[0]), str(tls[1])) if tls else None
    http = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    thread = threading.Thread(target=http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{http.port}"
    finally:
        http.shutdown()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (trust it with REQUESTS_CA_BUNDLE=certificate)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    loopback = ipaddress.ip_address("127.0.0.1")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(loopback)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "server.pem", directory / "server.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


def service_account(directory: Path, token_url: str) -> Path:
    """A service-account key file whose tokens come from `token_url` (a local token endpoint, see
    `token_endpoint`): Application Default Credentials for a server under test, no network."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    document = {
        "type": "service_account",
        "project_id": "acme-analytics",
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": "kfpt-runtime@acme-analytics.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_url,
    }
    path = directory / "service-account.json"
    path.write_text(json.dumps(document))
    return path


def token_endpoint(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """An OAuth token endpoint that grants every JWT-bearer assertion an hour's access token."""
    body = json.dumps({"access_token": "test-access-token", "expires_in": 3600, "token_type": "Bearer"})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]


def machine_settings(examples: int) -> Any:
    """Hypothesis settings for a state machine: the same `examples` sequences on every run (CI
    must not turn red on a draw), or, with KFP_TRIGGER_HUNT=1, ten times as many fresh ones, to
    look for new failures (`KFP_TRIGGER_HUNT=1 pytest tests/unit/test_model*.py`)."""
    from hypothesis import HealthCheck, settings

    hunt = bool(os.environ.get("KFP_TRIGGER_HUNT"))
    return settings(
        max_examples=examples * (10 if hunt else 1),
        stateful_step_count=40,
        deadline=None,
        derandomize=not hunt,
        suppress_health_check=[HealthCheck.too_slow],
    )
