"""The `routes.yaml` schema and its loader: validated whole, once, with every error reported.

`load_routes(text)` returns `RoutesConfig`: the pipeline definitions and one compiled `Rule` per
route (patterns compiled, templates parsed). Errors are collected, not raised one by one, and
each names its place: `routes[survey-landed].when.storage.object: ...`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
)

from events.errors import RoutesError
from events.model import Source
from events.params import FromField, ParamSpec, Scalar, Template, parse_template, unknown_fields
from events.patterns import Pattern, compile_pattern

NAME = r"^[a-z][a-z0-9-]{0,62}$"
DEFAULT_RUN_KEY = "{route}/{event.key}"
DEFAULT_SCHEDULE_RUN_KEY = "{route}/{schedule.job}@{schedule.slot}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_M = TypeVar("_M", bound=BaseModel)


ScalarValue = StrictBool | StrictInt | StrictFloat | str


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: object) -> object:
    """A duration: a number of seconds, or a string like `90s`, `10m`, `2h`, `1d`."""
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)):
        return float(match[1]) * UNITS[match[2]]
    return value


Duration = Annotated[
    float,
    BeforeValidator(
        seconds, json_schema_input_type=float | Annotated[str, Field(pattern=r"^\d+(\.\d+)?[smhd]$")]
    ),
    Field(gt=0),
]


class Batch(_Model):
    manifest: bool = Field(
        False,
        description='the object is a JSON manifest {"objects": [names relative to its folder]}: '
        "run only once every listed object exists and is non-empty",
    )


class StorageWhen(_Model):
    """An object finalized in `bucket` whose name matches `object`."""

    bucket: Annotated[str, Field(min_length=3, max_length=222, description="the bucket's name (exact)")]
    object: str = Field("**", description="name pattern: {capture}, *, **")
    content_types: tuple[str, ...] = Field((), description="accept only these content types")
    min_size: int = Field(0, ge=0, description="skip smaller objects (bytes)")
    batch: Batch = Field(default_factory=Batch, description="the object is a batch manifest")


class Signature(_Model):
    """The producer signs each message: attributes `timestamp` (Unix seconds) and `signature`,
    `v1=` + hex HMAC-SHA256 over `<timestamp>.` + the message data, with a shared secret."""

    secret: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="the environment variable that holds the shared secret (mount it from Secret Manager)",
    )
    max_skew: Duration = Field(300.0, description="refuse messages signed further from now than this")


class PubsubWhen(_Model):
    """A message on `topic` (short name or projects/P/topics/T) meeting every condition."""

    topic: Annotated[
        str, Field(min_length=1, description="a short name, or projects/P/topics/T to pin the project")
    ]
    attributes: dict[str, str | tuple[str, ...]] = Field(
        default_factory=dict, description="attribute → required value (or any of a list)"
    )
    data: dict[str, ScalarValue | tuple[ScalarValue, ...]] = Field(
        default_factory=dict, description="JSON field path → required value (or any of a list)"
    )
    signature: Signature | None = Field(None, description="require a valid producer signature")


class BigQueryWhen(_Model):
    """A successful BigQuery job wrote to a table matching `table` (project.dataset.table)."""

    table: Annotated[str, Field(min_length=5, description="project.dataset.table; each part a pattern")]


class ScheduleWhen(_Model):
    """Cloud Scheduler job `job` fired; its slot is found by rounding down to `cron`."""

    job: Annotated[str, Field(min_length=1, max_length=500, description="the Cloud Scheduler job's name")]
    cron: Annotated[str, Field(min_length=9, description="the job's schedule (unix cron)")]
    timezone: str = Field("UTC", description="the time zone the cron is read in (IANA name)")


class When(_Model):
    storage: StorageWhen | None = Field(None, description="a Cloud Storage object was finalized")
    pubsub: PubsubWhen | None = Field(None, description="a message was published (not by Cloud Scheduler)")
    bigquery: BigQueryWhen | None = Field(None, description="a BigQuery job wrote a table")
    schedule: ScheduleWhen | None = Field(None, description="a Cloud Scheduler job fired")


class FromSpec(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str = Field(alias="from", min_length=1, description="the event field whose value to pass")
    default: ScalarValue | None = Field(None, description="the value when the field is absent")


class Run(_Model):
    pipeline: str = Field(description="a name under pipelines:")
    version: Annotated[str, Field(pattern=r"^(current|[0-9a-f]{12,64})$")] = Field(
        "current", description="current: the catalog's version at load; or a content hash (≥ 12 hex) to pin"
    )
    backend: Literal["local", "kfp", "vertex"] | None = Field(
        None, description="override the pipeline's backend"
    )
    params: dict[str, StrictBool | StrictInt | StrictFloat | str | FromSpec] = Field(
        default_factory=dict,
        description="pipeline parameter → literal, template with {fields}, or {from: field}",
    )
    run_key: str | None = Field(
        None,
        description="template of the idempotency key; default {route}/{event.key}, "
        "and {route}/{schedule.job}@{schedule.slot} for schedules",
    )
    enabled: bool = Field(True, description="false: matching events are recorded as skipped")


class Rate(_Model):
    runs: int = Field(ge=1, description="at most this many run starts")
    per: Duration = Field(description="per window of this length (windows are aligned to the epoch)")


class RouteLimits(_Model):
    """What one route may spend. Runs held back by a limit wait in the ledger's queue."""

    max_active: int | None = Field(
        None, ge=1, description="at most this many runs of the route at once; more wait in the queue"
    )
    rate: Rate | None = Field(None, description="at most `runs` starts per `per`; more wait in the queue")
    coalesce: Duration | None = Field(
        None,
        description="storage routes: finalize events with the same run key inside one window of this "
        "length become one run, started when the window closes, with every object in batch_objects",
    )
    max_age: Duration | None = Field(
        None, description="skip (and record) events older than this, by their CloudEvent time"
    )


class GlobalLimits(_Model):
    daily_submissions: int | None = Field(
        None, ge=1, description="at most this many runs started per UTC day, all routes together; more wait"
    )


class RouteModel(_Model):
    name: Annotated[str, Field(pattern=NAME, description="unique; lower-case letters, digits, dashes")]
    description: str = Field("", description="for people")
    when: When = Field(description="exactly one of storage, pubsub, bigquery, schedule")
    run: Run = Field(description="what to start")
    limits: RouteLimits = Field(default_factory=RouteLimits, description="what the route may spend")


class PipelineModel(_Model):
    source: str | None = Field(None, description="module:function of a @dsl.pipeline")
    package: str | None = Field(
        None,
        description="a compiled pipeline YAML: a path (relative to routes.yaml), gs://bucket/object, "
        "or an Artifact Registry template https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG",
    )
    backend: Literal["local", "kfp", "vertex"] = Field(
        "local",
        description="local: kfp.local on this machine; kfp: the cluster at KFP_TRIGGER_KFP_HOST; "
        "vertex: Vertex AI Pipelines in KFP_TRIGGER_VERTEX_PROJECT",
    )
    pipeline_root: str | None = Field(
        None, description="gs://… for cluster backends (default: the backend's)"
    )
    params: dict[str, ScalarValue] = Field(default_factory=dict, description="defaults for every route")
    notify: bool = Field(
        False, description="wrap in an exit handler that publishes the completion notice to Pub/Sub"
    )


class RoutesFileModel(_Model):
    version: Literal[1] = Field(1, description="the file format's version")
    limits: Any = None  # GlobalLimits, validated on its own so that its errors do not hide others
    pipelines: dict[str, Any] = Field(default_factory=dict)
    routes: list[Any] = Field(default_factory=list)


class RoutesDocument(RoutesFileModel):
    """routes.yaml as a whole, for the JSON Schema (`kfp-trigger routes schema`); the loader
    validates pipelines and routes one by one, to report every problem with its place."""

    limits: GlobalLimits = Field(
        default_factory=GlobalLimits, description="what all routes together may spend"
    )
    pipelines: dict[str, PipelineModel] = Field(default_factory=dict, description="name → pipeline")
    routes: list[RouteModel] = Field(default_factory=list, description="which events start which pipeline")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of routes.yaml (for editors, and for the generated reference)."""
    schema = RoutesDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kfp-trigger routes.yaml"
    return schema


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
    enabled: bool = True
    pattern: Pattern | None = None  # object name or project.dataset.table
    content_types: tuple[str, ...] = ()
    min_size: int = 0
    manifest: bool = False  # the object is a batch manifest: check readiness before running
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
    if len(problems) > count or run_key is None:
        return None
    return Rule(params=params, run_key=run_key, **common)


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
