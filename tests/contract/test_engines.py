"""The backend contract (tests/support/engine_contract.py) on the KFP and Vertex fakes; the same
checks run on real engines with `make test-live`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials

from events.rules import PipelineDef
from pipelines.backend import Backend, CompiledPipeline
from pipelines.catalog import build_pipeline
from pipelines.kfp.backend import KfpBackend
from pipelines.vertex import VertexBackend
from tests.support import engine_contract, serving
from tests.support.kfp_fake import FakeKfp
from tests.support.vertex_fake import FakeVertex


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    folder: Path = tmp_path_factory.mktemp("engines")
    definition = PipelineDef("echo", "tests.support.echo_pipeline:echo_pipeline", None, "kfp", None, {})
    return build_pipeline(definition, folder, folder / "packages")


@pytest.fixture(params=["kfp", "vertex"])
def engine(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "kfp":
        with serving(FakeKfp()) as url:
            yield KfpBackend.for_host(url, "kubeflow")
    else:
        with serving(FakeVertex()) as url:
            yield VertexBackend(
                "acme-analytics",
                "europe-west1",
                "gs://acme-pipelines/root",
                endpoint=url,
                credentials=AnonymousCredentials(),
            )


@pytest.mark.parametrize("check", engine_contract.CHECKS, ids=lambda check: check.__name__)
def test_the_engine_keeps_the_contract(
    engine: Backend, echo: CompiledPipeline, check: Callable[[Backend, CompiledPipeline], None]
) -> None:
    check(engine, echo)
