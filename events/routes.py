"""The `routes.yaml` loader: validated whole, once, with every error reported (`events.schema`
holds the models).

`load_routes(text)` returns `RoutesConfig`: the pipeline definitions and one compiled `Rule` per
route (patterns compiled, templates parsed). Errors are collected, not raised one by one, and
each names its place: `routes[survey-landed].when.storage.object: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from events.errors import RoutesError
from events.model import Source
from events.params import FromField, ParamSpec, Scalar, Template, key_problem, parse_template, unknown_fields
from events.patterns import Pattern, compile_pattern
from events.schema import (
    DEFAULT_MAX_WAIT,
    NAME,
    FromSpec,
    GlobalLimits,
    PipelineModel,
    RouteLimits,
    RouteModel,
    RoutesFileModel,
    ScheduleWhen,
    Signature,
)

DEFAULT_RUN_KEY = "{route}/{event.key}"
DEFAULT_SCHEDULE_RUN_KEY = "{route}/{schedule.job}@{schedule.slot}"


@dataclass(frozen=True, slots=True)
class PipelineDef:
    name: str
    source: str | None
    package: str | None
    backend: str
    pipeline_root: str | None
    params: Mapping[str, Scalar]
    notify: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One route, compiled: what the router matches and how it builds the run."""

    name: str
    source: Source
    index: str  # bucket, topic short name, job, or "" when the route cannot be indexed
    pipeline: str  # a catalog key: the pipeline's name, or name@version/backend for a variant
    version: str = "current"
    backend: str | None = None
    params: Mapping[str, ParamSpec]
    run_key: Template
    concurrency_key: Template | None = None  # limits.concurrency.key: runs rendering it alike share a limit
    enabled: bool = True
    raw_values: bool = False  # event values enter templates unchecked (run.raw_values)
    pattern: Pattern | None = None  # object name or project.dataset.table
    content_types: tuple[str, ...] = ()
    min_size: int = 0
    manifest: bool = False  # the object is a batch manifest: check readiness before running
    max_wait: float = DEFAULT_MAX_WAIT  # a manifest's objects, past the event's time: then skip
    topic: str = ""  # as written: short name or full path
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    data: Mapping[str, tuple[Scalar, ...]] = field(default_factory=dict)
    cron: str = ""
    timezone: str = "UTC"
    param_types: Mapping[str, str] = field(default_factory=dict)
    limits: RouteLimits = field(default_factory=RouteLimits)
    signature: Signature | None = None  # pubsub: the producer's signature to check


@dataclass(frozen=True, slots=True)
class RoutesConfig:
    pipelines: Mapping[str, PipelineDef]
    rules: tuple[Rule, ...]
    limits: GlobalLimits = field(default_factory=GlobalLimits)


def load_routes(text: str) -> RoutesConfig:
    """Parse and validate routes.yaml text.

    Raises:
        RoutesError: with every problem found, each prefixed by its path.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RoutesError([f"(file): not valid YAML{where}"]) from exc
    problems: list[str] = []
    top = _validate(RoutesFileModel, document if document is not None else {}, "", problems)
    if top is None:
        raise RoutesError(problems)

    limits = _validate(GlobalLimits, top.limits or {}, "limits", problems) or GlobalLimits()
    pipelines: dict[str, PipelineDef] = {}
    for name, raw in top.pipelines.items():
        where = f"pipelines[{name}]"
        if not re.match(NAME, str(name)):
            problems.append(f"{where}: name must match {NAME}")
        model = _validate(PipelineModel, raw, where, problems)
        if model is None:
            continue
        if (model.source is None) == (model.package is None):
            problems.append(f"{where}: give exactly one of 'source' (module:function) or 'package'")
        elif model.source is not None and not re.match(r"^[\w.]+:\w+$", model.source):
            problems.append(f"{where}.source: expected module:function, got {model.source!r}")
        pipelines[str(name)] = PipelineDef(
            str(name),
            model.source,
            model.package,
            model.backend,
            model.pipeline_root,
            model.params,
            model.notify,
        )

    rules: list[Rule] = []
    seen: set[str] = set()
    for position, raw in enumerate(top.routes):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f"routes[{label if isinstance(label, str) and label else position}]"
        route = _validate(RouteModel, raw, where, problems)
        if route is None:
            continue
        if route.name in seen:
            problems.append(f"{where}.name: another route has the name {route.name!r}")
        seen.add(route.name)
        if route.run.pipeline not in pipelines and route.run.pipeline not in top.pipelines:
            problems.append(f"{where}.run.pipeline: no pipeline named {route.run.pipeline!r}")
        rule = _compile(route, where, problems)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RoutesError(problems)
    merged = tuple(replace(rule, params={**pipelines[rule.pipeline].params, **rule.params}) for rule in rules)
    return RoutesConfig(pipelines, merged, limits)


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], raw: object, where: str, problems: list[str]) -> _M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
            problems.append(f"{where}{path}".lstrip(".") + f": {error['msg']}")
        return None


def _compile(model: RouteModel, where: str, problems: list[str]) -> Rule | None:
    when = model.when
    chosen = [name for name in ("storage", "pubsub", "bigquery", "schedule") if getattr(when, name)]
    if len(chosen) != 1:
        problems.append(f"{where}.when: give exactly one of storage, pubsub, bigquery, schedule")
        return None
    source = Source(chosen[0])
    count = len(problems)
    common: dict[str, Any] = {"name": model.name, "source": source, "pipeline": model.run.pipeline}
    common |= {"version": model.run.version, "backend": model.run.backend}
    common["enabled"] = model.run.enabled
    common["raw_values"] = model.run.raw_values
    common["limits"] = model.limits
    captures: tuple[str, ...] = ()
    if model.limits.coalesce is not None:
        if source is not Source.STORAGE:
            problems.append(f"{where}.limits.coalesce: only storage routes can coalesce events")
        elif model.run.run_key is None:
            problems.append(
                f"{where}.limits.coalesce: set run.run_key to the batch's key (e.g. '{{route}}/{{date}}'); "
                "the default key is one per object"
            )

    if when.storage is not None:
        pattern = _pattern(when.storage.object, "/", f"{where}.when.storage.object", problems)
        captures = pattern.captures if pattern else ()
        common |= {
            "index": when.storage.bucket,
            "pattern": pattern,
            "content_types": when.storage.content_types,
            "min_size": when.storage.min_size,
            "manifest": when.storage.batch.manifest,
            "max_wait": when.storage.batch.max_wait,
        }
    elif when.pubsub is not None:
        topic = when.pubsub.topic
        if "/" in topic and not re.match(r"^projects/[^/]+/topics/[^/]+$", topic):
            problems.append(f"{where}.when.pubsub.topic: expected a short name or projects/P/topics/T")
        common |= {
            "index": topic.rsplit("/", 1)[-1],
            "topic": topic,
            "attributes": {k: _tuple(v) for k, v in when.pubsub.attributes.items()},
            "data": {k: _tuple(v) for k, v in when.pubsub.data.items()},
            "signature": when.pubsub.signature,
        }
    elif when.bigquery is not None:
        pattern = _pattern(when.bigquery.table, ".", f"{where}.when.bigquery.table", problems)
        if pattern is not None and when.bigquery.table.count(".") != 2:
            problems.append(f"{where}.when.bigquery.table: expected project.dataset.table")
        captures = pattern.captures if pattern else ()
        common |= {
            "index": when.bigquery.table if pattern and pattern.literal else "",
            "pattern": pattern,
        }
    elif when.schedule is not None:
        _check_schedule(when.schedule, f"{where}.when.schedule", problems)
        common |= {
            "index": when.schedule.job,
            "cron": when.schedule.cron,
            "timezone": when.schedule.timezone,
        }

    params: dict[str, ParamSpec] = {}
    for name, spec in model.run.params.items():
        params[name] = _param(spec, source, captures, f"{where}.run.params.{name}", problems)
    default_key = DEFAULT_SCHEDULE_RUN_KEY if source is Source.SCHEDULE else DEFAULT_RUN_KEY
    run_key = _template(model.run.run_key or default_key, source, captures, f"{where}.run.run_key", problems)
    if run_key is not None and (ambiguous := key_problem(run_key)):
        problems.append(f"{where}.run.run_key: {ambiguous}")
    concurrency_key = None
    if model.limits.concurrency is not None:
        text, at = model.limits.concurrency.key, f"{where}.limits.concurrency.key"
        concurrency_key = _template(text, source, captures, at, problems)
    if len(problems) > count or run_key is None:
        return None
    return Rule(params=params, run_key=run_key, concurrency_key=concurrency_key, **common)


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _pattern(text: str, separator: str, where: str, problems: list[str]) -> Pattern | None:
    try:
        return compile_pattern(text, separator)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _template(
    text: str, source: Source, captures: tuple[str, ...], where: str, problems: list[str]
) -> Template | None:
    try:
        template = parse_template(text)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None
    for path in unknown_fields(template.fields, source, captures):
        problems.append(f"{where}: unknown field {{{path}}} for a {source} route")
    return template


def _param(
    spec: bool | int | float | str | FromSpec,
    source: Source,
    captures: tuple[str, ...],
    where: str,
    problems: list[str],
) -> ParamSpec:
    if isinstance(spec, FromSpec):
        for path in unknown_fields((spec.from_,), source, captures):
            problems.append(f"{where}.from: unknown field {path!r} for a {source} route")
        return FromField(spec.from_, spec.default)
    if isinstance(spec, str):
        template = _template(spec, source, captures, where, problems)
        return (
            template
            if template is not None and template.fields
            else spec.replace("{{", "{").replace("}}", "}")
        )
    return spec


def _check_schedule(schedule: ScheduleWhen, where: str, problems: list[str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    if not croniter.is_valid(schedule.cron):
        problems.append(f"{where}.cron: {schedule.cron!r} is not a valid cron expression")
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.timezone: unknown time zone {schedule.timezone!r}")
