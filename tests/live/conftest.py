"""The backend contract against a real engine: `make test-live`, never part of `make test`.

Set at least one target (read here, before the test environment is isolated):

    KFP_TRIGGER_LIVE_KFP_HOST           a KFP API endpoint (plus _KFP_NAMESPACE, _KFP_TOKEN or
                                        _KFP_CLIENT_ID as the cluster needs; ADC otherwise)
    KFP_TRIGGER_LIVE_VERTEX_PROJECT     a project with Vertex AI Pipelines (plus _VERTEX_LOCATION,
                                        _VERTEX_PIPELINE_ROOT gs://…, _VERTEX_SERVICE_ACCOUNT)

With none set, the run stops at once with exit status 2 and says what to set: a live suite
that silently ran nothing would prove nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from events.rules import PipelineDef
from pipelines.backend import Backend, CompiledPipeline
from pipelines.catalog import build_pipeline

PREFIX = "KFP_TRIGGER_LIVE_"
TARGETS: dict[str, dict[str, str]] = {}


def pytest_configure(config: pytest.Config) -> None:
    live = {
        name.removeprefix(PREFIX).lower(): value
        for name, value in os.environ.items()
        if name.startswith(PREFIX)
    }
    if live.get("kfp_host"):
        TARGETS["kfp"] = live
    if live.get("vertex_project"):
        TARGETS["vertex"] = live


def pytest_collection_finish(session: pytest.Session) -> None:
    if not TARGETS:
        pytest.exit(
            "make test-live needs a live target: set KFP_TRIGGER_LIVE_KFP_HOST (a KFP API endpoint) "
            "and/or KFP_TRIGGER_LIVE_VERTEX_PROJECT with _VERTEX_LOCATION and _VERTEX_PIPELINE_ROOT "
            "(see tests/live/conftest.py)",
            returncode=2,
        )


def live_backend(kind: str) -> Backend:
    values = TARGETS[kind]
    if kind == "kfp":
        from pipelines.kfp.backend import KfpBackend

        return KfpBackend.for_host(
            values["kfp_host"],
            values.get("kfp_namespace", "kubeflow"),
            token=values.get("kfp_token", ""),
            client_id=values.get("kfp_client_id", ""),
        )
    from pipelines.vertex import VertexBackend

    return VertexBackend(
        values["vertex_project"],
        values.get("vertex_location", "us-central1"),
        values["vertex_pipeline_root"],
        service_account=values.get("vertex_service_account", ""),
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per configured engine."""
    if "engine_kind" in metafunc.fixturenames:
        metafunc.parametrize("engine_kind", sorted(TARGETS))


@pytest.fixture
def engine(engine_kind: str) -> tuple[str, Backend]:
    return engine_kind, live_backend(engine_kind)


@pytest.fixture(scope="session")
def echo(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    folder: Path = tmp_path_factory.mktemp("live")
    definition = PipelineDef("echo", "tests.support.echo_pipeline:echo_pipeline", None, "kfp", None, {})
    return build_pipeline(definition, folder, folder / "packages")
