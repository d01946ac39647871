"""Problems in routes.yaml located at their line and column (issue 20), and YAML 1.1's scalars
that are not the text they look like."""

from __future__ import annotations

import pytest

from events.errors import RoutesError
from events.locate import Located, locate, tree
from events.routes import load_routes

TEXT = """\
pipelines:
  train: {source: "m:f"}
routes:
  - name: landed
    when:
      storage: {bucket: ab, object: "x/{a}"}
    run: {pipeline: train}
  - name: off
    when: {schedule: {cron: "0 * * * *"}}
    run: {pipeline: train}
"""


@pytest.mark.parametrize(
    ("problem", "line", "column"),
    [
        ("routes[landed].when.storage.bucket: too short", 6, 25),  # the scalar itself
        ("routes[landed].run.params.x: no such field", 7, 5),  # absent below run: run's key
        ("routes[1].name: Input should be a valid string", 8, 11),
        ("pipelines[train].source: cannot build", 2, 19),
        ("routes[9].run: beyond the list", 3, 1),  # no such item: the routes key
    ],
)
def test_a_problem_points_at_the_deepest_place_its_path_names(problem: str, line: int, column: int) -> None:
    found = locate(tree(TEXT), problem)
    assert (found.line, found.column) == (line, column), found
    assert found.path == problem.split(": ", 1)[0]


def test_an_unquoted_yaml_1_1_boolean_gets_the_quoted_fix() -> None:
    with pytest.raises(RoutesError) as raised:
        load_routes(TEXT.replace("bucket: ab", "bucket: abc"))
    (problem,) = [p for p in raised.value.problems if p.startswith("routes[1].name")]
    found = locate(tree(TEXT), problem)
    assert (found.line, found.column) == (8, 11)
    assert "YAML reads 'off' as a boolean: quote it, \"off\", to mean the text" in found.message
    assert found.text("routes.yaml").startswith("routes.yaml:8:11: routes[1].name: ")


def test_a_quoted_name_or_another_complaint_gets_no_hint() -> None:
    quoted_text = tree(TEXT.replace("name: off", 'name: "off"'))
    quoted = locate(quoted_text, "routes[1].name: Input should be a valid string")
    assert quoted.message == "Input should be a valid string"
    assert locate(tree(TEXT), "routes[1].name: another route has it").message == "another route has it"


def test_yaml_that_does_not_parse_is_located_where_the_parser_stopped() -> None:
    broken = "routes:\n  - name: a\n   when: x\n"
    with pytest.raises(RoutesError) as raised:
        load_routes(broken)
    (problem,) = raised.value.problems
    found = locate(tree(broken), problem)
    assert (found.line, found.column) > (1, 0)
    assert found.as_json("r.yaml") == {
        "file": "r.yaml",
        "line": found.line,
        "column": found.column,
        "path": "",
        "message": found.message,
    }


def test_a_problem_without_a_place_has_line_zero() -> None:
    assert locate(None, "routes[a].name: x") == Located("routes[a].name", "x", 0, 0)
    assert locate(tree(TEXT), "no path at all").line == 0
