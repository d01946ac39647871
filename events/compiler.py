"""One route of routes.yaml compiled into a `Rule`: its condition matched, its templates parsed
and checked against the fields its events carry, every problem added with its place.

`compile_route` is what `events.routes` calls per route that passed its schema check; a join
route compiles each part like a route of its own source (`_compile_join`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from pydantic import BaseModel

from events.filters import Equals, Filter, compile_filter, contradictions, leaves
from events.model import Source
from events.overlap import overlapping
from events.params import (
    COMPOSED,
    FromField,
    ParamSpec,
    Template,
    key_problem,
    parse_template,
    unknown_fields,
)
from events.patterns import Pattern, compile_pattern
from events.resources import check_bucket, check_expect, check_schedule, check_table, check_topic
from events.route_checks import check_batching, join_needed, optional_reads
from events.rules import JoinSpec, Rule
from events.schema import (
    BigQueryWhen,
    Condition,
    FromSpec,
    PubsubWhen,
    RouteModel,
    ScheduleWhen,
    StorageWhen,
)
from events.signatures import IN_TRANSIT, covers
from events.storage import name_problem

DEFAULT_RUN_KEY = "{route}/{event.key}"
DEFAULT_SCHEDULE_RUN_KEY = "{route}/{schedule.job}@{schedule.slot}"
DEFAULT_JOIN_RUN_KEY = "{route}/{key}@{join.opened}"
JOIN_FIELDS = frozenset({"route", "key", "join.opened"})  # besides parts.<name>.<field>
CONDITIONS = ("storage", "pubsub", "bigquery", "schedule")


@dataclass(frozen=True, slots=True)
class Known:
    """The fields the templates of one route (or join part) may name."""

    what: str  # "a storage route", "a join route"
    unknown: Callable[[tuple[str, ...]], list[str]]  # the paths among these it cannot fill


def _source_known(source: Source, captures: tuple[str, ...]) -> Known:
    return Known(f"a {source} route", lambda paths: unknown_fields(paths, source, captures))


def compile_route(model: RouteModel, where: str, problems: list[str]) -> Rule | None:
    check_expect(model, where, problems)
    if model.when.join is not None:
        if any(getattr(model.when, name) for name in CONDITIONS):
            problems.append(f"{where}.when: a join lists its conditions under join.parts, alone")
            return None
        return _compile_join(model, where, problems)
    matched = _condition(model.when, f"{where}.when", problems)
    if matched is None:
        return None
    source, common, captures = matched
    check_batching(model, source, where, problems)
    known = _source_known(source, captures)
    default_key = DEFAULT_SCHEDULE_RUN_KEY if source is Source.SCHEDULE else DEFAULT_RUN_KEY
    run = _run_templates(model, default_key, known, where, problems)
    if run is None:
        return None
    _unsigned_reads(common, _fields_read(run), f"{where}.when.pubsub", problems)
    # Built even with problems (routes.yaml then fails to load): its parameters are still
    # checked against the pipeline in the same pass.
    return Rule(source=source, **common, **_route_common(model), **run)


def _unsigned_reads(common: Mapping[str, Any], read: Iterable[str], where: str, problems: list[str]) -> None:
    """A signed route may match on, or pass on, only what its signature vouches for: not an
    attribute a client library may add in transit, which anyone on the way could set."""
    if common.get("signature") is None:
        return
    paths = {f"attributes.{key}" for key in common["attributes"]} | set(read)
    for path in sorted(paths):
        attribute = path.removeprefix("attributes.")
        if path.startswith("attributes.") and not covers(attribute):
            problems.append(
                f"{where}: the route is signed, but reads the attribute {attribute!r}, which the "
                f"signature does not cover ({IN_TRANSIT}* attributes may be added in transit): "
                "read it from the message data instead"
            )


def _route_common(model: RouteModel) -> dict[str, Any]:
    """What every route's Rule takes from its model (and a join's parts from their route's)."""
    return {
        "name": model.name,
        "pipeline": model.run.pipeline,
        "version": model.run.version,
        "backend": model.run.backend,
        "enabled": model.run.enabled,
        "raw_values": model.run.raw_values,
        "canary": (model.run.canary.pipeline, model.run.canary.percent) if model.run.canary else None,
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
    concurrency, expect = model.limits.concurrency, model.expect
    given = {  # the optional keys a route may name: (its place, its text or None)
        "concurrency_key": ("limits.concurrency.key", concurrency.key if concurrency else None),
        "partition": ("partition", model.partition),
        "fresh_key": ("expect.per", expect.per if expect else None),
    }
    keys = {
        name: None if text is None else _template(text, known, f"{where}.{place}", problems)
        for name, (place, text) in given.items()
    }
    if run_key is None:
        return None
    return {"params": params, "run_key": run_key, **keys}


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
    common, captures = _SOURCES[chosen[0]](getattr(when, chosen[0]), f"{where}.{chosen[0]}", problems)
    return Source(chosen[0]), common, captures


Matched = tuple[dict[str, Any], tuple[str, ...]]  # a condition's Rule fields, and its captures


def _storage(storage: StorageWhen, where: str, problems: list[str]) -> Matched:
    pattern = _pattern(storage.object, "/", f"{where}.object", problems)
    if pattern is not None and (refused := name_problem(pattern.example)):
        problems.append(
            f"{where}.object: every name it matches {refused}, and such names are "
            "quarantined: the route can never match"
        )
    check_bucket(storage.bucket, f"{where}.bucket", problems)
    name = storage.name
    name_filter = None if name is None else _filter(name, f"{where}.name", problems, text=True)
    common = {
        "index": storage.bucket,
        "pattern": pattern,
        "name_filter": name_filter,
        "content_types": storage.content_types,
        "min_size": storage.min_size,
        "manifest": storage.batch.manifest,
        "max_wait": storage.batch.max_wait,
    }
    return common, pattern.captures if pattern else ()


def _pubsub(pubsub: PubsubWhen, where: str, problems: list[str]) -> Matched:
    check_topic(pubsub.topic, f"{where}.topic", problems)
    common = {
        "index": pubsub.topic.rsplit("/", 1)[-1],
        "topic": pubsub.topic,
        "attributes": {
            key: _filter(spec, f"{where}.attributes.{key}", problems, text=True)
            for key, spec in pubsub.attributes.items()
        },
        "data": {path: _filter(spec, f"{where}.data.{path}", problems) for path, spec in pubsub.data.items()},
        "signature": pubsub.signature,
    }
    return common, ()


def _bigquery(bigquery: BigQueryWhen, where: str, problems: list[str]) -> Matched:
    pattern = _pattern(bigquery.table, ".", f"{where}.table", problems)
    if pattern is not None:
        check_table(bigquery.table, f"{where}.table", problems)
    common = {
        "index": bigquery.table if pattern and pattern.literal else "",
        "pattern": pattern,
        "min_rows": bigquery.min_rows,
    }
    return common, pattern.captures if pattern else ()


def _schedule(schedule: ScheduleWhen, where: str, problems: list[str]) -> Matched:
    check_schedule(schedule, where, problems)
    common = {
        "index": schedule.job,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "catch_up": schedule.catch_up,
    }
    return common, ()


_SOURCES: dict[str, Callable[[Any, str, list[str]], Matched]] = {
    "storage": _storage,
    "pubsub": _pubsub,
    "bigquery": _bigquery,
    "schedule": _schedule,
}


def _compile_join(model: RouteModel, where: str, problems: list[str]) -> Rule | None:
    """A join route: one Rule per part (matched like a route of the part's source, its run_key
    the correlation key), and the route's Rule, whose templates read `key`, `join.opened` and
    `parts.<name>.<field>`."""
    join = model.when.join
    assert join is not None
    count = len(problems)
    for name in ("coalesce", "settle"):
        if getattr(model.limits, name) is not None:
            problems.append(f"{where}.limits.{name}: a join runs once per key and window; it cannot {name}")
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
    if _part_problems(parts, where, problems):
        return None
    needed = join_needed(join.require, len(parts), f"{where}.when.join.require", problems)
    if needed:
        optional_reads(run, where, problems)
    latest = frozenset(name for name, part in join.parts.items() if part.keep == "latest")
    spec = JoinSpec(parts, join.within, join.on_expire, needed, latest, join.on_late)
    return Rule(source=Source.JOIN, index="", **_route_common(model), **run, join=spec)


def _part_problems(parts: tuple[Rule, ...], where: str, problems: list[str]) -> bool:
    """What a join's parts cannot be: signed yet reading what the signature does not cover, or
    two that one event could meet (it would fill only one). Whether any was found."""
    count = len(problems)
    for part in parts:
        common = {"signature": part.signature, "attributes": part.attributes}
        _unsigned_reads(common, part.needs, f"{where}.when.join.parts.{part.part}.pubsub", problems)
    for first, second in combinations(parts, 2):
        if overlapping(first, second):
            problems.append(
                f"{where}.when.join.parts: one event could meet both {first.part!r} and {second.part!r}, "
                "and would fill only one: give them a condition that tells them apart (another "
                "attribute or data value, object names with different beginnings)"
            )
    return len(problems) > count


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
        return FromField(spec.from_, spec.default, spec.raw)
    if isinstance(spec, str):
        template = _template(spec, known, where, problems)
        return (
            template
            if template is not None and template.fields
            else spec.replace("{{", "{").replace("}}", "}")
        )
    return spec
