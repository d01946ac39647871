"""Problems in routes.yaml located at their line and column (issue 20), and YAML 1.1's scalars
that are not the text they look like."""

from __future__ import annotations

from pathlib import Path

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


ONE_PASS = """\
pipelines:
  train: {source: "pipelines.examples.survey:nonexistent"}
routes:
  - name: Bad_Name
    when:
      storage: {bucket: ab, object: "x/{tenant}/{tenant}.csv"}
      pubsub: {topic: tpc}
    run: {pipeline: nope, params: {who: "{nothing}"}}
  - name: off
    when: {schedule: {job: nightly, cron: "99 * * * *"}}
    run: {pipeline: train}
"""


def test_one_pass_reports_every_problem_at_its_line_and_column(tmp_path: Path) -> None:
    """Issue 20: a bad name and a short bucket no longer hide the semantic problems of their
    route, nor the routes' problems a pipeline that does not build."""
    from pipelines import catalog as routes_catalog

    path = tmp_path / "routes.yaml"
    path.write_text(ONE_PASS)
    with pytest.raises(RoutesError) as raised:
        routes_catalog.load(path, tmp_path / "packages")
    root = tree(ONE_PASS)
    told = [located.text("routes.yaml") for located in (locate(root, p) for p in raised.value.problems)]
    assert told == [
        "routes.yaml:4:11: routes[Bad_Name].name: must match ^[a-z][a-z0-9-]{0,62}$ (got 'Bad_Name')",
        "routes.yaml:6:25: routes[Bad_Name].when.storage.bucket: must be at least 3 characters long "
        "(got 'ab')",
        "routes.yaml:8:21: routes[Bad_Name].run.pipeline: no pipeline named 'nope'",
        "routes.yaml:5:5: routes[Bad_Name].when: give exactly one of storage, pubsub, bigquery, schedule",
        "routes.yaml:6:37: routes[Bad_Name].when.storage.object: capture {tenant} appears twice",
        "routes.yaml:8:41: routes[Bad_Name].run.params.who: unknown field {nothing} for a storage route",
        "routes.yaml:9:11: routes[1].name: Input should be a valid string"
        " (YAML reads 'off' as a boolean: quote it, \"off\", to mean the text)",
        "routes.yaml:10:43: routes[1].when.schedule.cron: '99 * * * *' is not a cron expression: five "
        'fields, minute hour day-of-month month day-of-week, e.g. "0 3 * * *" (03:00 every day)',
        "routes.yaml:2:19: pipelines[train].source: cannot build: AttributeError:"
        " module 'pipelines.examples.survey' has no attribute 'nonexistent'",
    ]


def test_what_a_placeholder_would_say_is_left_out() -> None:
    """Two routes with bad names hold the same placeholder: no "another route has the name"
    about it; a missing required field still ends its route's checks."""
    text = TEXT.replace("name: landed", "name: Bad_One").replace("name: off", "name: Bad_Two")
    with pytest.raises(RoutesError) as raised:
        load_routes(text.replace("bucket: ab", "bucket: abc"))
    assert not [p for p in raised.value.problems if "another route has the name" in p]
    assert [p.split(":")[0] for p in raised.value.problems] == [
        "routes[Bad_One].name",
        "routes[Bad_Two].name",
        "routes[Bad_Two].when.schedule.job",  # required and missing: nothing to check on with
    ]


def test_a_file_that_cannot_be_read_is_named_once(tmp_path: Path) -> None:
    """A problem with the whole file has no path: `routes check` prints FILE: MESSAGE, and the
    message names the file for callers that print the error alone (the function at start)."""
    from pipelines import catalog as routes_catalog

    missing = tmp_path / "missing.yaml"
    with pytest.raises(RoutesError) as raised:
        routes_catalog.load(missing, tmp_path / "packages")
    (problem,) = raised.value.problems
    told = locate(None, problem).text("missing.yaml")
    assert told == f"missing.yaml: cannot read {missing} (No such file or directory)"
    assert str(missing) in str(raised.value)
