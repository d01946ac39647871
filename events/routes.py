"""The `routes.yaml` loader: validated whole, once, with every error reported (`events.schema`
holds the models, `events.compiler` makes each route a `Rule`).

`load_routes(text)` returns `RoutesConfig` (`events.rules`): the pipeline definitions and one
compiled `Rule` per route (patterns compiled, templates parsed). Errors are collected, not raised
one by one, and each names its place: `routes[survey-landed].when.storage.object: ...`.
"""

from __future__ import annotations

import re
from dataclasses import replace

import yaml

from events.compiler import compile_route
from events.errors import RoutesError
from events.locate import FILE
from events.resources import tagged
from events.rules import PipelineDef, RoutesConfig, Rule
from events.schema import NAME, PipelineModel, RouteModel, RoutesFileModel
from events.schema_limits import GlobalLimits
from events.validation import closest, told, validate

# module:function, or a file beside routes.yaml (no `..`, no absolute path): path/to/file.py:function
SOURCE = re.compile(r"^(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*|(?:[\w-]+/)*\w+\.py):[A-Za-z_]\w*$")
Repaired = list[tuple[str, int]]  # (path, the problems' count once it was repaired): `validation.told`


def load_routes(text: str) -> RoutesConfig:
    """Parse and validate routes.yaml text.

    Raises:
        RoutesError: with every problem found, each prefixed by its path.
    """
    config, problems = check_routes(text)
    if problems:
        raise RoutesError(problems)
    return config


def check_routes(text: str) -> tuple[RoutesConfig, list[str]]:
    """routes.yaml text, validated in one pass: the config and every problem, each prefixed by
    its path. With problems, the config holds what did validate (its pipelines, for
    `pipelines.catalog` to build and report on in the same pass); it must not be served.

    A route or pipeline whose schema check fails is checked on: each failing field holds
    PLACEHOLDER (an unknown field is dropped) and the semantic checks run on the rest, so that a
    bad name does not hide an unknown pipeline; what they would say about the placeholders
    themselves is left out. A missing required field, or a field the placeholder does not
    satisfy either, still ends the checks of its route there.

    Raises:
        RoutesError: the text is not YAML.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise RoutesError([f"{FILE}: not valid YAML{where}" + (f": {problem}" if problem else "")]) from exc
    problems: list[str] = []
    top = validate(RoutesFileModel, document if document is not None else {}, "", problems)
    if top is None:
        return RoutesConfig({}, ()), problems
    repaired: Repaired = []
    limits = validate(GlobalLimits, top.limits or {}, "limits", problems) or GlobalLimits()
    pipelines = _pipelines(top, problems, repaired)
    rules = _rules(top, pipelines, problems, repaired)
    # The routes that compiled, with a pipeline that did too, are returned beside the problems of
    # the rest, so that what is checked later (parameters against the compiled pipelines) is
    # checked for them in the same pass.
    merged = tuple(
        replace(rule, params={**pipelines[rule.pipeline].params, **rule.params})
        for rule in rules
        if rule.pipeline in pipelines
    )
    return RoutesConfig(pipelines, merged, limits), told(problems, repaired)


def _pipelines(top: RoutesFileModel, problems: list[str], repaired: Repaired) -> dict[str, PipelineDef]:
    """The file's pipelines that validate; the problems of the others added."""
    pipelines: dict[str, PipelineDef] = {}
    for name, raw in top.pipelines.items():
        where, before = f"pipelines[{name}]", len(problems)
        if not re.match(NAME, str(name)):
            problems.append(f"{where}: name must match {NAME}")
        model = validate(PipelineModel, raw, where, problems, repaired)
        if model is None:
            continue
        if (model.source is None) == (model.package is None):
            problems.append(f"{where}: give exactly one of 'source' (module:function) or 'package'")
        elif model.source is not None and not SOURCE.match(model.source):
            problems.append(
                f"{where}.source: expected module:function or path/to/file.py:function, got {model.source!r}"
            )
        elif model.sha256 is not None and model.package is None:
            problems.append(f"{where}.sha256: only a package has a hash to check (give package:)")
        elif model.track is not None and (model.sha256 is not None or not tagged(model.package or "")):
            problems.append(f"{where}.track: only an Artifact Registry package named by a tag can be tracked")
        if len(problems) > before:
            continue  # not built (pipelines.catalog): what it would say is said already
        pipelines[str(name)] = PipelineDef(
            str(name),
            model.source,
            model.package,
            model.backend,
            model.pipeline_root,
            model.params,
            model.notify,
            model.sha256,
            model.track,
        )
    return pipelines


def _rules(
    top: RoutesFileModel, pipelines: dict[str, PipelineDef], problems: list[str], repaired: Repaired
) -> list[Rule]:
    """The file's routes compiled; the problems of each added with its place (a route by its
    name, or by its position where the name is missing or repeated)."""
    rules: list[Rule] = []
    seen: set[str] = set()
    labels: set[str] = set()
    for position, raw in enumerate(top.routes):
        label = raw.get("name") if isinstance(raw, dict) else None
        named = isinstance(label, str) and label and label not in labels
        labels.add(str(label))
        where = f"routes[{label if named else position}]"  # a repeated name: the route's position
        route = validate(RouteModel, raw, where, problems, repaired)
        if route is None:
            continue
        if route.name in seen:
            problems.append(f"{where}.name: another route has the name {route.name!r}")
        seen.add(route.name)
        runs = [("pipeline", route.run.pipeline)]
        if route.run.canary is not None:
            runs.append(("canary.pipeline", route.run.canary.pipeline))
        for field, pipeline in runs:
            if pipeline not in pipelines and pipeline not in top.pipelines:
                nearest = closest(pipeline, [str(name) for name in top.pipelines])
                problems.append(f"{where}.run.{field}: no pipeline named {pipeline!r}{nearest}")
        rule = compile_route(route, where, problems)
        if rule is not None:
            rules.append(rule)
    return rules
