"""The catalog: deterministic compilation, content-addressed versions, declared inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from events.rules import PipelineDef
from pipelines.catalog import build_pipeline, content_hash

SURVEY = PipelineDef("survey-retrain", "pipelines.examples.survey:survey_retrain", None, "local", None, {})


def test_compiling_twice_gives_the_same_version(tmp_path: Path) -> None:
    first = build_pipeline(SURVEY, tmp_path, tmp_path / "a")
    second = build_pipeline(SURVEY, tmp_path, tmp_path / "b")
    assert first.version == second.version
    assert first.package.read_bytes() == second.package.read_bytes()
    assert first.package.name == f"survey-retrain-{first.version[:12]}.yaml"


def test_the_version_ignores_formatting_but_not_content(tmp_path: Path) -> None:
    compiled = build_pipeline(SURVEY, tmp_path, tmp_path / "p").package.read_text()
    documents = list(yaml.safe_load_all(compiled))
    reformatted = "# a comment\n" + yaml.safe_dump_all(documents, default_flow_style=True, width=40)
    assert content_hash(reformatted) == content_hash(compiled)
    changed = compiled.replace("defaultValue: 300.0", "defaultValue: 301.0")
    assert changed != compiled
    assert content_hash(changed) != content_hash(compiled)


def test_a_compiled_package_is_used_as_is(tmp_path: Path) -> None:
    compiled = build_pipeline(SURVEY, tmp_path, tmp_path / "p")
    (tmp_path / "survey.yaml").write_text(compiled.package.read_text())
    from_package = build_pipeline(
        PipelineDef("survey-retrain", None, "survey.yaml", "local", None, {}), tmp_path, tmp_path / "q"
    )
    assert from_package.version == compiled.version


def test_a_package_pinned_by_its_sha256_loads_only_with_that_content(tmp_path: Path) -> None:
    """What `deploy source` ships: the function refuses a package that is not the one built."""
    compiled = build_pipeline(SURVEY, tmp_path, tmp_path / "p")
    (tmp_path / "survey.yaml").write_text(compiled.package.read_text())
    pinned = PipelineDef("survey-retrain", None, "survey.yaml", "local", None, {}, sha256=compiled.version)
    assert build_pipeline(pinned, tmp_path, tmp_path / "q").version == compiled.version
    (tmp_path / "survey.yaml").write_text(compiled.package.read_text().replace("300.0", "301.0"))
    with pytest.raises(ValueError, match=r"not the sha256 [0-9a-f]{64} routes\.yaml gives"):
        build_pipeline(pinned, tmp_path, tmp_path / "r")


def test_inputs_and_required_parameters(tmp_path: Path) -> None:
    compiled = build_pipeline(SURVEY, tmp_path, tmp_path / "p")
    assert compiled.inputs["epochs"] == "NUMBER_INTEGER"
    assert compiled.inputs["learning_rate"] == "NUMBER_DOUBLE"
    assert compiled.required == frozenset({"responses_uri"})


def test_a_pipeline_named_like_its_component_is_refused(tmp_path: Path) -> None:
    """KFP would load the component of that name instead of the pipeline, silently."""
    definition = PipelineDef(
        "echo", "tests.support.echo_pipeline:colliding_pipeline", None, "local", None, {}
    )
    with pytest.raises(ValueError, match="also the name of one of its components"):
        build_pipeline(definition, tmp_path, tmp_path / "p")


def _routes_with(tmp_path: Path, run: str) -> Path:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "pipelines:\n  echo: {source: 'tests.support.echo_pipeline:echo_pipeline'}\n"
        "routes:\n  - name: landed\n    when: {storage: {bucket: landing}}\n"
        f"    run: {{pipeline: echo, params: {{message: 'x'}}, {run}}}\n"
    )
    return routes


def test_a_route_can_pin_an_earlier_version(tmp_path: Path) -> None:
    from pipelines import catalog as routes_catalog

    current = build_pipeline(
        PipelineDef("echo", "tests.support.echo_pipeline:echo_pipeline", None, "local", None, {}),
        tmp_path,
        tmp_path / "current",
    )
    older_text = current.package.read_text().replace("defaultValue: 0.0", "defaultValue: 7.0", 1)
    assert older_text != current.package.read_text()
    older_hash = content_hash(older_text)
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages" / f"echo-{older_hash[:12]}.yaml").write_text(older_text)

    loaded = routes_catalog.load(_routes_with(tmp_path, f"version: {older_hash[:16]}"), tmp_path / "state")
    (rule,) = loaded.rules
    assert rule.pipeline == f"echo@{older_hash[:12]}/local"
    assert loaded.catalog[rule.pipeline].version == older_hash
    assert loaded.catalog["echo"].version == current.version, "other routes keep the current version"


def test_an_unknown_pin_is_reported_with_its_place(tmp_path: Path) -> None:
    from events.errors import RoutesError
    from pipelines import catalog as routes_catalog

    with pytest.raises(
        RoutesError, match=r"routes\[landed\]\.run\.version: no compiled package echo-0123456789ab"
    ):
        routes_catalog.load(_routes_with(tmp_path, "version: 0123456789abcdef"), tmp_path / "state")


def test_a_route_can_choose_another_backend(tmp_path: Path) -> None:
    from pipelines import catalog as routes_catalog

    loaded = routes_catalog.load(_routes_with(tmp_path, "backend: vertex"), tmp_path / "state")
    (rule,) = loaded.rules
    assert rule.pipeline.endswith("/vertex")
    assert loaded.catalog[rule.pipeline].backend == "vertex"
    assert loaded.catalog["echo"].backend == "local"


def test_the_exit_step_runs_from_the_notify_image_and_installs_nothing(tmp_path: Path) -> None:
    """Private clusters have no egress: with KFP_TRIGGER_NOTIFY_IMAGE the step installs nothing."""
    import yaml

    echo = PipelineDef(
        "echo", "tests.support.echo_pipeline:echo_pipeline", None, "kfp", None, {}, notify=True
    )

    def exit_container(image: str) -> tuple[str, str]:
        pipeline = build_pipeline(echo, tmp_path, tmp_path / f"p{len(image)}", image)
        spec = next(doc for doc in yaml.safe_load_all(pipeline.package.read_text()) if doc)
        container = spec["deploymentSpec"]["executors"]["exec-publish-completion"]["container"]
        return container["image"], " ".join(container["command"])

    image = "europe-docker.pkg.dev/acme-analytics/kfp/kfp-trigger-notify:2.17.3"
    pinned, command = exit_container(image)
    assert (pinned, "pip install" in command) == (image, False)
    default, command = exit_container("")
    assert (default, "pip install" in command) == ("python:3.11-slim", True)
