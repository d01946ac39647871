"""Pipeline packages read from Cloud Storage (emulator) and from a template registry over HTTPS."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from events.rules import PipelineDef
from pipelines import templates
from pipelines.catalog import build_pipeline
from tests.conftest import PROJECT
from tests.support import self_signed, serving

SURVEY = PipelineDef("survey-retrain", "pipelines.examples.survey:survey_retrain", None, "local", None, {})
TOKEN = "registry-access-token"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_pipeline(SURVEY, Path("."), tmp_path_factory.mktemp("packages")).package.read_text()


def from_package(location: str, **changes: Any) -> PipelineDef:
    return PipelineDef("survey-retrain", None, location, "vertex", None, {}, **changes)


def test_a_package_in_cloud_storage(storage_emulator: str, compiled: str, tmp_path: Path) -> None:
    from google.cloud.storage import Client

    bucket = Client(project=PROJECT).create_bucket(f"kfp-trigger-{uuid.uuid4().hex[:10]}")
    bucket.blob("templates/survey.yaml").upload_from_string(compiled)
    local = build_pipeline(SURVEY, tmp_path, tmp_path / "a")
    remote = build_pipeline(
        from_package(f"gs://{bucket.name}/templates/survey.yaml"), tmp_path, tmp_path / "b"
    )
    assert remote.version == local.version
    assert remote.package.read_text() == compiled
    assert remote.template_uri is None  # Vertex records only template-registry URIs
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        build_pipeline(from_package(f"gs://{bucket.name}/templates/gone.yaml"), tmp_path, tmp_path)


class Registry:
    """Serves one template at /acme/pipelines/survey-retrain/v3; remembers the Authorization seen."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.authorization: list[str | None] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.authorization.append(request.headers.get("Authorization"))
        if request.path not in ("/acme/pipelines/survey-retrain/v3", "/files/survey.yaml"):
            response = Response("not found", 404)
        elif request.path.startswith("/acme") and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            response = Response("unauthenticated", 401)
        else:
            response = Response(self.text, 200, mimetype="application/x-yaml")
        return response(environ, start_response)


@pytest.fixture
def registry(
    compiled: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Registry, str]]:
    """The registry over HTTPS on 127.0.0.1, recognised as Artifact Registry, with ADC giving TOKEN."""
    import google.auth
    from google.oauth2.credentials import Credentials

    certificate, key = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (Credentials(token=TOKEN), PROJECT))
    app = Registry(compiled)
    with serving(app, tls=(certificate, key)) as url:
        monkeypatch.setattr(templates, "ARTIFACT_REGISTRY", re.compile(re.escape(url) + "/acme/.+"))
        yield app, url


def test_an_artifact_registry_template_is_fetched_with_a_token_and_recorded(
    registry: tuple[Registry, str], compiled: str, tmp_path: Path
) -> None:
    app, url = registry
    location = f"{url}/acme/pipelines/survey-retrain/v3"
    pipeline = build_pipeline(from_package(location), tmp_path, tmp_path / "p")
    assert pipeline.package.read_text() == compiled
    assert pipeline.template_uri == location
    assert app.authorization == [f"Bearer {TOKEN}"]


def test_a_plain_https_file_is_fetched_without_credentials(
    registry: tuple[Registry, str], tmp_path: Path
) -> None:
    app, url = registry
    pipeline = build_pipeline(from_package(f"{url}/files/survey.yaml"), tmp_path, tmp_path / "p")
    assert pipeline.template_uri is None
    assert app.authorization == [None]


def test_a_notified_template_is_not_recorded_as_its_template(
    registry: tuple[Registry, str], tmp_path: Path
) -> None:
    """The exit-handler wrapper changes the spec, so the job no longer is that template."""
    _, url = registry
    location = f"{url}/acme/pipelines/survey-retrain/v3"
    pipeline = build_pipeline(from_package(location, notify=True), tmp_path, tmp_path / "p")
    assert pipeline.template_uri is None


def test_a_missing_template_is_an_http_error(registry: tuple[Registry, str], tmp_path: Path) -> None:
    _, url = registry
    import requests

    with pytest.raises(requests.HTTPError, match="404"):
        build_pipeline(from_package(f"{url}/acme/pipelines/other/v1"), tmp_path, tmp_path / "p")


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("gs://just-a-bucket", "expected gs://bucket/object"),
        ("http://example.com/survey.yaml", "Artifact Registry URL"),
        ("https://example.com/a-page", "Artifact Registry URL"),
    ],
)
def test_locations_that_cannot_name_a_package(location: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=reason):
        build_pipeline(from_package(location), tmp_path, tmp_path / "p")
