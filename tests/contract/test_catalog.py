"""The catalog: deterministic compilation, content-addressed versions, declared inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from events.routes import PipelineDef
from pipelines.catalog import build_pipeline, content_hash

SURVEY = PipelineDef("survey-retrain", "pipelines.survey:survey_retrain", None, "local", None, {})


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


def test_inputs_and_required_parameters(tmp_path: Path) -> None:
    compiled = build_pipeline(SURVEY, tmp_path, tmp_path / "p")
    assert compiled.inputs["epochs"] == "NUMBER_INTEGER"
    assert compiled.inputs["learning_rate"] == "NUMBER_DOUBLE"
    assert compiled.required == frozenset({"responses_uri"})


def test_a_pipeline_named_like_its_component_is_refused(tmp_path: Path) -> None:
    """KFP would load the component of that name instead of the pipeline, silently."""
    definition = PipelineDef("echo", "tests.echo_pipeline:colliding_pipeline", None, "local", None, {})
    with pytest.raises(ValueError, match="also the name of one of its components"):
        build_pipeline(definition, tmp_path, tmp_path / "p")
