"""The `routes.yaml` loader: validated whole, once, with every error reported (`events.schema`
holds the models).

`load_routes(text)` returns `RoutesConfig`: the pipeline definitions and one compiled `Rule` per
route (patterns compiled, templates parsed). Errors are collected, not raised one by one, and
each names its place: `routes[survey-landed].when.storage.object: ...`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

import yaml
from pydantic import BaseModel, ValidationError

from events.errors import RoutesError
from events.filters import Equals, Filter, compile_filter, contradictions, leaves
from events.locate import FILE
from events.model import Source
from events.params import (
    COMPOSED,
    FromField,
    ParamSpec,
    Scalar,
    Template,
    key_problem,
    parse_template,
    unknown_fields,
)
from events.patterns import Pattern, compile_pattern
from events.schema import (
    DEFAULT_MAX_WAIT,
    FILTER_TAGS,
    NAME,
    Condition,
    Expect,
    FromSpec,
    GlobalLimits,
    PipelineModel,
    RouteLimits,
    RouteModel,
    RoutesFileModel,
    ScheduleWhen,
    Signature,
)
from events.storage import name_problem

DEFAULT_RUN_KEY = "{route}/{event.key}"
DEFAULT_SCHEDULE_RUN_KEY = "{route}/{schedule.job}@{schedule.slot}"
DEFAULT_JOIN_RUN_KEY = "{route}/{key}@{join.opened}"
JOIN_FIELDS = frozenset({"route", "key", "join.opened"})  # besides parts.<name>.<field>


@dataclass(frozen=True, slots=True)
class Known:
    """The fields the templates of one route (or join part) may name."""

    what: str  # "a storage route", "a join route"
    unknown: Callable[[tuple[str, ...]], list[str]]  # the paths among these it cannot fill


def _source_known(source: Source, captures: tuple[str, ...]) -> Known:
    return Known(f"a {source} route", lambda paths: unknown_fields(paths, source, captures))


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
    name_filter: Filter | None = None  # storage: what the object's name must also meet
    topic: str = ""  # as written: short name or full path
    attributes: Mapping[str, Filter] = field(default_factory=dict)  # attribute → its filter
    data: Mapping[str, Filter] = field(default_factory=dict)  # data field path → its filter
    cron: str = ""
    timezone: str = "UTC"
    catch_up: float | None = None  # schedule.catch_up: the horizon reconcile starts missed slots in
    expect: Expect | None = None  # data that must arrive in every window (service/watch.py)
    param_types: Mapping[str, str] = field(default_factory=dict)
    limits: RouteLimits = field(default_factory=RouteLimits)
    signature: Signature | None = None  # pubsub: the producer's signature to check
    join: JoinSpec | None = None  # a join route: its parts (each a Rule), window and expiry
    part: str = ""  # a join's part: its name (its run_key is the correlation key's template)
    needs: tuple[str, ...] = ()  # a join's part: the paths of its event the run's templates read


@dataclass(frozen=True, slots=True)
class JoinSpec:
    parts: tuple[Rule, ...]  # one per part, each matched like a route of its own source
    within: float
    on_expire: str  # record | alert

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(part.part for part in self.parts)


def listeners(rules: tuple[Rule, ...]) -> list[Rule]:
    """What listens to events: each route, or each part of a join route."""
    return [listener for rule in rules for listener in (rule.join.parts if rule.join else (rule,))]


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
    top = _validate(RoutesFileModel, document if document is not None else {}, "", problems)
    if top is None:
        return RoutesConfig({}, ()), problems
    repaired: list[tuple[str, int]] = []  # (path, the problems' count once it was repaired)

    limits = _validate(GlobalLimits, top.limits or {}, "limits", problems) or GlobalLimits()
    pipelines: dict[str, PipelineDef] = {}
    for name, raw in top.pipelines.items():
        where, before = f"pipelines[{name}]", len(problems)
        if not re.match(NAME, str(name)):
            problems.append(f"{where}: name must match {NAME}")
        model = _validate(PipelineModel, raw, where, problems, repaired)
        if model is None:
            continue
        if (model.source is None) == (model.package is None):
            problems.append(f"{where}: give exactly one of 'source' (module:function) or 'package'")
        elif model.source is not None and not re.match(r"^[\w.]+:\w+$", model.source):
            problems.append(f"{where}.source: expected module:function, got {model.source!r}")
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
        )

    rules: list[Rule] = []
    seen: set[str] = set()
    labels: set[str] = set()
    for position, raw in enumerate(top.routes):
        label = raw.get("name") if isinstance(raw, dict) else None
        named = isinstance(label, str) and label and label not in labels
        labels.add(str(label))
        where = f"routes[{label if named else position}]"  # a repeated name: the route's position
        route = _validate(RouteModel, raw, where, problems, repaired)
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
        return RoutesConfig(pipelines, (), limits), _told(problems, repaired)
    merged = tuple(replace(rule, params={**pipelines[rule.pipeline].params, **rule.params}) for rule in rules)
    return RoutesConfig(pipelines, merged, limits), []


def _told(problems: list[str], repaired: list[tuple[str, int]]) -> list[str]:
    """The problems, without those found later under a field that held PLACEHOLDER."""

    def about_placeholder(index: int, problem: str) -> bool:
        return any(
            index >= since and (problem.startswith((f"{path}: ", f"{path}.", f"{path}[")))
            for path, since in repaired
        )

    return [problem for index, problem in enumerate(problems) if not about_placeholder(index, problem)]


_M = TypeVar("_M", bound=BaseModel)


PLACEHOLDER = "placeholder"  # what a field that failed its schema check holds while the rest is checked


def _validate(
    model: type[_M],
    raw: object,
    where: str,
    problems: list[str],
    repaired: list[tuple[str, int]] | None = None,
) -> _M | None:
    """`raw` validated, or None with its problems added. With `repaired`, a failing value is
    replaced (`check_routes`) and the model so repaired is returned; each repaired path is
    added to `repaired`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
    paths = [f"{where}{error_path(error['loc'])}".lstrip(".") for error in errors]
    problems.extend(f"{path}: {error['msg']}" for path, error in zip(paths, errors, strict=True))
    fixed = _repaired(raw, errors) if repaired is not None else None
    if fixed is None or repaired is None:
        return None
    try:
        validated = model.model_validate(fixed)
    except ValidationError:
        return None
    repaired.extend((path, len(problems)) for path in paths)
    return validated


def error_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error's place as the loader writes paths: `.key` and `[position]`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in _place(loc))


def _place(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A pydantic error's place in the document: without the tags of a filter's forms."""
    return tuple(part for part in loc if part not in FILTER_TAGS)


def _repaired(raw: object, errors: list[Any]) -> object | None:
    """A copy of `raw` with each failing value replaced by PLACEHOLDER (an unknown field
    dropped); None where that cannot be done (a required field is missing, the place is not a
    plain key or position)."""
    fixed: Any = copy.deepcopy(raw)
    for error in errors:
        place: tuple[Any, ...] = _place(error["loc"]) or (None,)
        *parents, last = place
        if error["type"] == "missing" or last is None:
            return None
        container: Any = fixed
        for part in parents:
            try:
                container = container[part]
            except (KeyError, IndexError, TypeError):
                return None
        if not isinstance(container, dict | list) or (isinstance(container, dict) and last not in container):
            return None
        if error["type"] == "extra_forbidden" and isinstance(container, dict):
            del container[last]
        else:
            try:
                container[last] = PLACEHOLDER
            except (IndexError, TypeError):
                return None
    return cast(object, fixed)


CONDITIONS = ("storage", "pubsub", "bigquery", "schedule")


def _compile(model: RouteModel, where: str, problems: list[str]) -> Rule | None:
    _check_expect(model, where, problems)
    if model.when.join is not None:
        if any(getattr(model.when, name) for name in CONDITIONS):
            problems.append(f"{where}.when: a join lists its conditions under join.parts, alone")
            return None
        return _compile_join(model, where, problems)
    count = len(problems)
    matched = _condition(model.when, f"{where}.when", problems)
    if matched is None:
        return None
    source, common, captures = matched
    if model.limits.coalesce is not None:
        if source is not Source.STORAGE:
            problems.append(f"{where}.limits.coalesce: only storage routes can coalesce events")
        elif model.run.run_key is None:
            problems.append(
                f"{where}.limits.coalesce: set run.run_key to the batch's key (e.g. '{{route}}/{{date}}'); "
                "the default key is one per object"
            )
    known = _source_known(source, captures)
    default_key = DEFAULT_SCHEDULE_RUN_KEY if source is Source.SCHEDULE else DEFAULT_RUN_KEY
    run = _run_templates(model, default_key, known, where, problems)
    if len(problems) > count or run is None:
        return None
    return Rule(source=source, **common, **_route_common(model), **run)


def _route_common(model: RouteModel) -> dict[str, Any]:
    """What every route's Rule takes from its model (and a join's parts from their route's)."""
    return {
        "name": model.name,
        "pipeline": model.run.pipeline,
        "version": model.run.version,
        "backend": model.run.backend,
        "enabled": model.run.enabled,
        "raw_values": model.run.raw_values,
        "limits": model.limits,
        "expect": model.expect,
    }


def _run_templates(
    model: RouteModel, default_key: str, known: Known, where: str, problems: list[str]
) -> dict[str, Any] | None:
    """The route's params, run key and concurrency key, compiled and checked against `known`."""
    params: dict[str, ParamSpec] = {}
    for name, spec in model.run.params.items():
        params[name] = _param(spec, known, f"{where}.run.params.{name}", problems)
    run_key = _template(model.run.run_key or default_key, known, f"{where}.run.run_key", problems)
    if run_key is not None and (ambiguous := key_problem(run_key)):
        problems.append(f"{where}.run.run_key: {ambiguous}")
    concurrency_key = None
    if model.limits.concurrency is not None:
        text, at = model.limits.concurrency.key, f"{where}.limits.concurrency.key"
        concurrency_key = _template(text, known, at, problems)
    if run_key is None:
        return None
    return {"params": params, "run_key": run_key, "concurrency_key": concurrency_key}


def _condition(
    when: Condition, where: str, problems: list[str]
) -> tuple[Source, dict[str, Any], tuple[str, ...]] | None:
    """One condition (a route's `when`, or a join's part): its source, the Rule fields that match
    it, and the names its pattern captures."""
    chosen = [name for name in CONDITIONS if getattr(when, name)]
    if len(chosen) != 1:
        problems.append(f"{where}: give exactly one of {', '.join(CONDITIONS)}")
    if not chosen:
        return None  # with several, the first is checked on, so that its own problems show too
    source = Source(chosen[0])
    captures: tuple[str, ...] = ()
    common: dict[str, Any] = {}
    if when.storage is not None:
        pattern = _pattern(when.storage.object, "/", f"{where}.storage.object", problems)
        captures = pattern.captures if pattern else ()
        if pattern is not None and (refused := name_problem(pattern.example)):
            problems.append(
                f"{where}.storage.object: every name it matches {refused}, and such names are "
                "quarantined: the route can never match"
            )
        _check_bucket(when.storage.bucket, f"{where}.storage.bucket", problems)
        name = when.storage.name
        name_filter = None if name is None else _filter(name, f"{where}.storage.name", problems, text=True)
        common |= {
            "index": when.storage.bucket,
            "pattern": pattern,
            "name_filter": name_filter,
            "content_types": when.storage.content_types,
            "min_size": when.storage.min_size,
            "manifest": when.storage.batch.manifest,
            "max_wait": when.storage.batch.max_wait,
        }
    elif when.pubsub is not None:
        topic, at = when.pubsub.topic, f"{where}.pubsub"
        _check_topic(topic, f"{at}.topic", problems)
        common |= {
            "index": topic.rsplit("/", 1)[-1],
            "topic": topic,
            "attributes": {
                key: _filter(spec, f"{at}.attributes.{key}", problems, text=True)
                for key, spec in when.pubsub.attributes.items()
            },
            "data": {
                path: _filter(spec, f"{at}.data.{path}", problems) for path, spec in when.pubsub.data.items()
            },
            "signature": when.pubsub.signature,
        }
    elif when.bigquery is not None:
        pattern = _pattern(when.bigquery.table, ".", f"{where}.bigquery.table", problems)
        if pattern is not None:
            _check_table(when.bigquery.table, f"{where}.bigquery.table", problems)
        captures = pattern.captures if pattern else ()
        common |= {
            "index": when.bigquery.table if pattern and pattern.literal else "",
            "pattern": pattern,
        }
    elif when.schedule is not None:
        _check_schedule(when.schedule, f"{where}.schedule", problems)
        common |= {
            "index": when.schedule.job,
            "cron": when.schedule.cron,
            "timezone": when.schedule.timezone,
            "catch_up": when.schedule.catch_up,
        }
    return source, common, captures


def _compile_join(model: RouteModel, where: str, problems: list[str]) -> Rule | None:
    """A join route: one Rule per part (matched like a route of the part's source, its run_key
    the correlation key), and the route's Rule, whose templates read `key`, `join.opened` and
    `parts.<name>.<field>`."""
    join = model.when.join
    assert join is not None
    count = len(problems)
    if model.limits.coalesce is not None:
        problems.append(f"{where}.limits.coalesce: a join runs once per key and window; it cannot coalesce")
    part_known: dict[str, Known] = {}
    compiled: list[tuple[str, Source, dict[str, Any], Template]] = []
    for name, part in join.parts.items():
        at = f"{where}.when.join.parts.{name}"
        matched = _condition(part, at, problems)
        if matched is None:
            continue
        source, common, captures = matched
        part_known[name] = _source_known(source, captures)
        key_where = f"{at}.key" if part.key else f"{where}.when.join.key (for part {name!r})"
        key = _template(part.key or join.key, part_known[name], key_where, problems)
        if key is not None:
            compiled.append((name, source, common, key))

    def fills(path: str) -> bool:
        name, rest = part_field(path)
        if path in JOIN_FIELDS:
            return True
        return name in part_known and not part_known[name].unknown((rest,))

    def unknown(paths: tuple[str, ...]) -> list[str]:
        return [path for path in paths if not fills(path)]

    known = Known("a join route (route, key, join.opened, parts.<name>.<field>)", unknown)
    run = _run_templates(model, DEFAULT_JOIN_RUN_KEY, known, where, problems)
    if len(problems) > count or run is None:
        return None
    read = _fields_read(run)
    parts = tuple(
        Rule(
            source=source,
            **common,
            **_route_common(model),
            params={},
            run_key=key,
            part=name,
            needs=tuple(sorted(rest for part, rest in map(part_field, read) if part == name)),
        )
        for name, source, common, key in compiled
    )
    spec = JoinSpec(parts, join.within, join.on_expire)
    return Rule(source=Source.JOIN, index="", **_route_common(model), **run, join=spec)


def part_field(path: str) -> tuple[str, str]:
    """`parts.<name>.<field>` → (name, field); ("", "") for any other path."""
    head, _, rest = path.partition(".")
    name, _, field_path = rest.partition(".")
    return (name, field_path) if head == "parts" and name and field_path else ("", "")


def _fields_read(run: Mapping[str, Any]) -> set[str]:
    """Every field path the route's params, run key and concurrency key read."""
    specs = [*run["params"].values(), run["run_key"], run["concurrency_key"]]
    read: set[str] = set()
    for spec in specs:
        if isinstance(spec, Template):
            read |= set(spec.fields)
        elif isinstance(spec, FromField):
            read.add(spec.path)
    return read


def _filter(spec: object, where: str, problems: list[str], *, text: bool = False) -> Filter:
    """A filter compiled from its model; a part of it that can never hold is a problem (the
    route could never match). `text`: it reads text (an attribute, an object's name)."""
    compiled = compile_filter(_plain(spec), text=text)
    for leaf in leaves(compiled):
        if text and isinstance(leaf, Equals) and not isinstance(leaf.value, str):
            problems.append(
                f"{where}: {leaf.text} can never equal text (attributes and names are text): "
                f'quote it, "{leaf.text}"'
            )
    for reason in contradictions(compiled):
        problems.append(f"{where}: {reason}: the route can never match")
    return compiled


def _plain(spec: object) -> object:
    """A filter's model as routes.yaml wrote it: scalars, lists and mappings."""
    if isinstance(spec, BaseModel):
        return spec.model_dump(by_alias=True, exclude_none=True)
    if isinstance(spec, tuple):
        return [_plain(each) for each in spec]
    return spec


# Names that exist, by the platforms' own rules: a route naming anything else never hears an event.
# https://cloud.google.com/storage/docs/buckets#naming, https://cloud.google.com/pubsub/docs/create-topic
# (resource names), https://cloud.google.com/bigquery/docs/datasets#dataset-naming
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_TOPIC = re.compile(r"[A-Za-z][A-Za-z0-9._~+%-]{2,254}")
_DATASET = re.compile(r"[A-Za-z0-9_]{1,1024}")


def _check_bucket(bucket: str, where: str, problems: list[str]) -> None:
    if bucket.startswith("gs://") or "/" in bucket:
        problems.append(f"{where}: {bucket!r} is not a bucket name: write the name alone, without gs:// or /")
    elif not _BUCKET.fullmatch(bucket) or any(len(part) > 63 for part in bucket.split(".")):
        problems.append(
            f"{where}: {bucket!r} cannot be a bucket's name (lower-case letters, digits, - _ and ., "
            "starting and ending with a letter or digit): no storage trigger would ever watch it"
        )


def _check_topic(topic: str, where: str, problems: list[str]) -> None:
    if "/" in topic and not re.match(r"^projects/[^/]+/topics/[^/]+$", topic):
        problems.append(f"{where}: expected a short name or projects/P/topics/T")
        return
    short = topic.rsplit("/", 1)[-1]
    if not _TOPIC.fullmatch(short) or short.startswith("goog"):
        problems.append(
            f"{where}: {short!r} cannot be a topic's name (3 to 255 of letters, digits, - _ . ~ + %, "
            "starting with a letter, not with goog): no message would ever arrive on it"
        )


def _check_table(table: str, where: str, problems: list[str]) -> None:
    parts = table.split(".")
    if len(parts) != 3:
        problems.append(f"{where}: expected project.dataset.table")
    elif "{" not in parts[1] and "*" not in parts[1] and not _DATASET.fullmatch(parts[1]):
        problems.append(
            f"{where}: {parts[1]!r} cannot be a dataset's name (letters, digits and _ only): "
            "no job would ever write to it"
        )


def _pattern(text: str, separator: str, where: str, problems: list[str]) -> Pattern | None:
    try:
        pattern = compile_pattern(text, separator)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None
    for capture in pattern.captures:
        if capture in COMPOSED:  # only `route` can be: captures have no dots
            problems.append(
                f"{where}: the capture {{{capture}}} has the name of the field {{{capture}}}, which "
                "templates read instead: rename the capture"
            )
    return pattern


def _template(text: str, known: Known, where: str, problems: list[str]) -> Template | None:
    try:
        template = parse_template(text)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None
    for path in known.unknown(template.fields):
        problems.append(f"{where}: unknown field {{{path}}} for {known.what}")
    return template


def _param(
    spec: bool | int | float | str | FromSpec, known: Known, where: str, problems: list[str]
) -> ParamSpec:
    if isinstance(spec, FromSpec):
        for path in known.unknown((spec.from_,)):
            problems.append(f"{where}.from: unknown field {path!r} for {known.what}")
        return FromField(spec.from_, spec.default)
    if isinstance(spec, str):
        template = _template(spec, known, where, problems)
        return (
            template
            if template is not None and template.fields
            else spec.replace("{{", "{").replace("}}", "}")
        )
    return spec


def _check_expect(model: RouteModel, where: str, problems: list[str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if model.expect is None:
        return
    if model.expect.every < 60 or 86400 % model.expect.every:
        problems.append(f"{where}.expect.every: a whole number of windows per day (1d, 12h, 1h, 30m …)")
    try:
        ZoneInfo(model.expect.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.expect.timezone: unknown time zone {model.expect.timezone!r}")


def _fires(cron: str) -> bool:
    """Whether a valid cron names a time that comes (croniter searches some years ahead)."""
    from datetime import datetime

    from croniter import CroniterBadDateError, croniter

    try:
        croniter(cron, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


def _check_schedule(schedule: ScheduleWhen, where: str, problems: list[str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    if not croniter.is_valid(schedule.cron):
        problems.append(f"{where}.cron: {schedule.cron!r} is not a valid cron expression")
    elif not _fires(schedule.cron):
        problems.append(
            f"{where}.cron: {schedule.cron!r} names no date that exists (e.g. 30 February): it never fires"
        )
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where}.timezone: unknown time zone {schedule.timezone!r}")
