"""The routes.yaml JSON Schema and the reference generated from it: committed copies are
current, and what the loader accepts the schema accepts (and the other way round for the
obvious mistakes)."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from events.schema import json_schema
from functions.cli.reference import render
from tests.support import DATA, ROOT

SCHEMA = ROOT / "deploy" / "routes.schema.json"
REFERENCE = ROOT / "docs" / "routes-reference.md"


def test_the_committed_schema_and_reference_are_current() -> None:
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "kfp-trigger routes schema > deploy/routes.schema.json"
    )
    assert REFERENCE.read_text() == render(), "kfp-trigger routes reference > docs/routes-reference.md"


def test_every_part_of_the_schema_has_its_section_in_the_reference() -> None:
    from functions.cli.reference import PARTS

    documented = {name for name, _ in PARTS}
    assert set(json_schema()["$defs"]) <= documented, "add it to reference.PARTS"


@pytest.mark.parametrize(
    "path", [ROOT / "deploy" / "routes.example.yaml", DATA / "routes.yaml"], ids=lambda p: p.name
)
def test_files_the_loader_accepts_validate_against_the_schema(path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema())


@pytest.mark.parametrize(
    "broken",
    [
        {"routes": [{"name": "Bad_Name", "when": {"pubsub": {"topic": "t"}}, "run": {"pipeline": "p"}}]},
        {"routes": [{"name": "x", "when": {"pubsub": {"topic": "t"}}, "run": {"pipeline": "p", "oops": 1}}]},
        {"routes": [{"name": "x", "when": {}, "run": {"pipeline": "p"}}], "limits": {"daily_submissions": 0}},
        {
            "routes": [
                {
                    "name": "x",
                    "when": {"storage": {"bucket": "b1b"}},
                    "run": {"pipeline": "p"},
                    "limits": {"coalesce": "soon"},
                }
            ]
        },
    ],
)
def test_mistakes_an_editor_should_flag(broken: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json_schema())


def test_the_result_schema_file_is_current() -> None:
    """The product team's copy of the result contract: `kfp-trigger results schema` regenerates it."""
    import json

    from functions.service.results import result_schema
    from tests.support import ROOT

    committed = json.loads((ROOT / "deploy" / "schemas" / "run-finished.v2.schema.json").read_text())
    assert committed == result_schema()


def test_the_alert_schema_file_is_current() -> None:
    """The operators' copy of the alert contract: `kfp-trigger alerts schema` regenerates it."""
    import json

    from functions.service.alerts import alert_schema
    from tests.support import ROOT

    committed = json.loads((ROOT / "deploy" / "schemas" / "alert.v1.schema.json").read_text())
    assert committed == alert_schema()
