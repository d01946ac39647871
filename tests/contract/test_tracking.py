"""`track:` (issue 37): a pipeline that follows an Artifact Registry tag, against an offline
registry answering as the real one (tests/support/registry_fake.py): moving the tag changes the
next run's recorded version without a restart, two instances agree within the TTL, a version
already decided stays runnable, and a registry that does not answer keeps the version in use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from events import resources
from events.router import Router
from events.routes import load_routes
from events.rules import PipelineDef
from functions.service import intake
from functions.service.ports import Services
from pipelines import templates
from pipelines.catalog import build_pipeline
from pipelines.tracking import RETRY_SECONDS, Following
from tests.conftest import PROJECT, Clock
from tests.support import call, self_signed, serving, storage_event
from tests.support.registry_fake import FakeRegistry

TOKEN = "registry-access-token"
TTL = 300.0
ECHO = PipelineDef("echo", "tests.support.echo_pipeline:echo_pipeline", None, "local", None, {})
SLEEPY = PipelineDef("echo", "tests.support.echo_pipeline:sleepy_pipeline", None, "local", None, {})
ROUTES = """
pipelines:
  echo: {source: tests.support.echo_pipeline:echo_pipeline}
routes:
  - name: landed
    when: {storage: {bucket: landing}}
    run: {pipeline: echo}
"""


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeRegistry, str]]:
    """The registry over HTTPS on 127.0.0.1, its URLs read as Artifact Registry's; ADC gives TOKEN."""
    import google.auth
    from google.oauth2.credentials import Credentials

    certificate, key = self_signed(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate))
    monkeypatch.setattr(google.auth, "default", lambda scopes=None: (Credentials(token=TOKEN), PROJECT))
    fake = FakeRegistry(TOKEN)
    with serving(fake, tls=(certificate, key)) as url:
        host = re.escape(url)
        monkeypatch.setattr(templates, "REGISTRY_API", f"{url}/v1")
        monkeypatch.setattr(templates, "ARTIFACT_REGISTRY", re.compile(host + r"/[a-z0-9-]+-kfp/.+"))
        monkeypatch.setattr(
            resources,
            "TEMPLATE",
            re.compile(
                host + r"/(?P<location>[a-z0-9-]+)-kfp/(?P<project>[^/]+)/(?P<repo>[^/]+)"
                r"/(?P<package>[^/]+)/(?P<ref>[^/]+)$"
            ),
        )
        yield fake, f"{url}/europe-west1-kfp/acme/pipelines/echo/latest"


@pytest.fixture
def texts(tmp_path: Path) -> tuple[str, str]:
    """Two versions of one pipeline's package, as CI would upload them."""
    return tuple(  # type: ignore[return-value]
        build_pipeline(definition, Path("."), tmp_path / "compiled").package.read_text()
        for definition in (ECHO, SLEEPY)
    )


def tracked(location: str) -> PipelineDef:
    return PipelineDef("echo", None, location, "local", None, {}, track=TTL)


def test_moving_the_tag_changes_the_next_runs_version_on_every_instance_within_the_ttl(
    registry: tuple[FakeRegistry, str], texts: tuple[str, str], services: Services, tmp_path: Path
) -> None:
    fake, location = registry
    first = fake.upload("echo", texts[0], "latest")
    loaded = build_pipeline(tracked(location), tmp_path, tmp_path / "packages")
    assert loaded.template_uri == templates.at_version(location, first), "loaded at the version the tag named"
    clocks = Clock(0.0), Clock(0.0)
    instances = [
        Following({"echo": loaded}, {"echo": tracked(location)}, tmp_path, tmp_path / "packages", clock=clock)
        for clock in clocks
    ]
    second = fake.upload("echo", texts[1], "latest")  # CI pushed a new version and moved the tag
    clocks[0].now, clocks[1].now = 100.0, 250.0
    assert {instance["echo"].version for instance in instances} == {loaded.version}, "within the TTL"
    clocks[0].now = clocks[1].now = TTL
    moved = {instance["echo"].version for instance in instances}
    assert len(moved) == 1
    assert moved != {loaded.version}, "both look again once the TTL is up, and agree"
    assert instances[0]["echo"].template_uri == templates.at_version(location, second)
    assert instances[0][f"echo@{loaded.version[:12]}/local"] == loaded, "a decided version stays runnable"

    routed = replace(services, router=Router(load_routes(ROUTES).rules), catalog=instances[0])
    assert call(intake.handle, routed, *storage_event("landing", "a.csv", event_id="e-1")).status == 200
    (run,) = routed.store.runs(route="landed")
    assert run.version == instances[0]["echo"].version, "the run records the version it ran"


def test_a_registry_that_does_not_answer_keeps_the_version_in_use_and_is_asked_again_later(
    registry: tuple[FakeRegistry, str],
    texts: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, location = registry
    fake.upload("echo", texts[0], "latest")
    loaded = build_pipeline(tracked(location), tmp_path, tmp_path / "packages")
    clock = Clock(0.0)
    instance = Following(
        {"echo": loaded}, {"echo": tracked(location)}, tmp_path, tmp_path / "packages", clock=clock
    )
    fake.upload("echo", texts[1], "latest")
    fake.down = True
    clock.now = TTL
    assert instance["echo"] == loaded
    assert any(record.getMessage() == "tag not followed" for record in caplog.records)
    fake.down = False
    clock.now = TTL + RETRY_SECONDS - 1
    assert instance["echo"] == loaded, "not asked again at once"
    clock.now = TTL + RETRY_SECONDS
    assert instance["echo"] != loaded


def test_only_a_tagged_registry_package_can_be_tracked() -> None:
    from events.errors import RoutesError

    text = """
pipelines:
  pinned: {package: "https://europe-west1-kfp.pkg.dev/acme/pipelines/echo/sha256:%s", track: 5m}
  file: {package: packages/echo.yaml, track: 5m}
  tagged: {package: "https://europe-west1-kfp.pkg.dev/acme/pipelines/echo/latest", track: 5m}
routes: []
""" % ("0" * 64)
    with pytest.raises(RoutesError) as caught:
        load_routes(text)
    tracked_problems = [p for p in caught.value.problems if ".track:" in p]
    assert [p.split(".track")[0] for p in tracked_problems] == ["pipelines[pinned]", "pipelines[file]"]


def test_deploy_source_ships_a_tracked_pipeline_as_written_so_the_functions_follow_the_tag(
    registry: tuple[FakeRegistry, str], texts: tuple[str, str], tmp_path: Path
) -> None:
    """Even wrapped by notify (its package is then no registry template): pinned, it would never move."""
    import yaml

    from functions.cli.archive import shipped_routes
    from pipelines.catalog import load

    fake, location = registry
    fake.upload("echo", texts[0], "latest")
    written = {"package": location, "track": "5m", "notify": True}
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump({"pipelines": {"echo": written}, "routes": []}))
    text, files = shipped_routes(
        tmp_path / "routes.yaml", load(tmp_path / "routes.yaml", tmp_path / "packages")
    )
    shipped = yaml.safe_load(text)
    assert shipped["pipelines"]["echo"] == written
    assert files == {}
