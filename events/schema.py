"""The `routes.yaml` schema: pydantic models of the file, each field described.

The models validate the file (`events.routes.load_routes` uses them one part at a time, to
report every problem with its place) and give its JSON Schema (`json_schema()`), from which
`kfp-trigger routes schema` and the generated reference (docs/routes-reference.md) come.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from events.schema_limits import Expect, GlobalLimits, RouteLimits
from events.schema_types import Duration, FilterSpec, Model, ScalarValue

NAME = r"^[a-z][a-z0-9-]{0,62}$"


DEFAULT_MAX_WAIT = 6 * 3600.0  # batch.max_wait: 6 h


class Batch(Model):
    manifest: bool = Field(
        False,
        description='the object is a JSON manifest {"objects": [names relative to its folder]}: '
        "run only once every listed object exists and is non-empty",
    )
    max_wait: Duration = Field(
        DEFAULT_MAX_WAIT,
        lt=24 * 3600,
        description="how long after the manifest's event to wait for its objects; past it the event "
        "is recorded skipped (incomplete batch: missing …) instead of retried. Under 24 h, the "
        "platform's retry horizon",
    )


class StorageWhen(Model):
    """An object finalized in `bucket` whose name matches `object`."""

    bucket: Annotated[str, Field(min_length=3, max_length=222, description="the bucket's name (exact)")]
    object: str = Field("**", description="name pattern: {capture}, *, **")
    content_types: tuple[str, ...] = Field((), description="accept only these content types")
    name: FilterSpec | None = Field(
        None,
        description="the object's name must also meet this filter: prefix, suffix, not, a list (any of); "
        'e.g. {not: {suffix: ".tmp"}}',
    )
    min_size: int = Field(0, ge=0, description="skip smaller objects (bytes)")
    batch: Batch = Field(default_factory=Batch, description="the object is a batch manifest")


class Signature(Model):
    """The producer signs each message: attributes `timestamp` (Unix seconds) and `signature`,
    `v2=` + hex HMAC-SHA256 with a shared secret over the timestamp, topic, attributes and data
    (docs/routes.md, "Signed product messages"); signed messages must carry an `event_id`."""

    secret: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="the environment variable that holds the shared secret (mount it from Secret Manager)",
    )
    max_skew: Duration = Field(300.0, description="refuse messages signed further from now than this")


class PubsubWhen(Model):
    """A message on `topic` (short name or projects/P/topics/T) meeting every condition."""

    topic: Annotated[
        str, Field(min_length=1, description="a short name, or projects/P/topics/T to pin the project")
    ]
    attributes: dict[str, FilterSpec] = Field(
        default_factory=dict,
        description="attribute → a value, a list (any of), or comparators (prefix, suffix, gt/gte/lt/lte, "
        "exists, not); attributes are text: a range reads them as decimal numbers",
    )
    data: dict[str, FilterSpec] = Field(
        default_factory=dict,
        description="JSON field path → a value, a list (any of), or comparators (prefix, suffix, "
        "gt/gte/lt/lte on JSON numbers, exists, not)",
    )
    signature: Signature | None = Field(None, description="require a valid producer signature")


class BigQueryWhen(Model):
    """A successful BigQuery job wrote to a table matching `table` (project.dataset.table)."""

    table: Annotated[str, Field(min_length=5, description="project.dataset.table; each part a pattern")]
    min_rows: int = Field(
        0,
        ge=0,
        description="skip (and record) a job that wrote fewer rows; a load job reports bytes only, so "
        "its rows are known when it wrote none (an empty load is skipped by min_rows: 1)",
    )


MAX_CATCH_UP = 7 * 86400.0  # schedule.catch_up: at most a week


class ScheduleWhen(Model):
    """Cloud Scheduler job `job` fired; its slot is found by rounding down to `cron`."""

    job: Annotated[str, Field(min_length=1, max_length=500, description="the Cloud Scheduler job's name")]
    cron: str = Field(description="the job's schedule (unix cron)")
    timezone: str = Field("UTC", description="the time zone the cron is read in (IANA name)")
    catch_up: Duration | None = Field(
        None,
        le=MAX_CATCH_UP,
        description="reconcile starts the slots missed within this horizon (e.g. 1d), each once: a "
        "scheduler paused over a weekend, a job deleted for an hour; off by default",
    )


class Condition(Model):
    storage: StorageWhen | None = Field(None, description="a Cloud Storage object was finalized")
    pubsub: PubsubWhen | None = Field(None, description="a message was published (not by Cloud Scheduler)")
    bigquery: BigQueryWhen | None = Field(None, description="a BigQuery job wrote a table")
    schedule: ScheduleWhen | None = Field(None, description="a Cloud Scheduler job fired")


class JoinPart(Condition):
    """One part of a join: exactly one of storage, pubsub, bigquery, schedule."""

    key: str | None = Field(
        None,
        description="this part's correlation key template when its fields are named otherwise "
        "(e.g. {data.tenant}/{data.survey_id} for a message); default: the join's key",
    )
    keep: Literal["first", "latest"] = Field(
        "first",
        description="which arrival of this part the run gets when it arrives more than once before "
        "the window completes: the first one, or the latest one to take a corrected upload",
    )


MAX_WITHIN = 30 * 86400.0  # join.within: at most 30 days


class AtLeast(Model):
    at_least: int = Field(ge=1, le=8, description="this many of the join's parts")


class Join(Model):
    """Run once the parts (`require`) have arrived for the same key, within the window."""

    parts: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")], JoinPart] = Field(
        min_length=2,
        max_length=8,
        description="part name (lower-case letters, digits, _) → the condition it waits for",
    )
    key: str = Field(
        description="the correlation key, a template rendered from each part's event (e.g. "
        "{tenant}/{survey_id}): parts whose key renders the same belong together",
    )
    within: Duration = Field(
        le=MAX_WITHIN,
        description="the window, from the first part's arrival: parts arriving later open a new one",
    )
    require: Literal["all", "any"] | AtLeast = Field(
        "all",
        description="how many parts complete a window: all, any (the first one), or {at_least: N}; "
        "the run then reads a part's fields only as {from: parts.NAME.FIELD, default: …}",
    )
    on_late: Literal["record", "rerun"] = Field(
        "record",
        description="a part that arrives after the window's run started, inside the window, with new "
        "content: record it, or start one more run for it, RUN_KEY~late-N (the window's parts with "
        "this arrival in its place)",
    )
    on_expire: Literal["record", "alert"] = Field(
        "record",
        description="a window that closes with parts missing: record it (explain names the missing "
        "parts), or record it and log the `join expired (alert)` line the deployed alert watches",
    )


class When(Condition):
    join: Join | None = Field(None, description="several conditions, correlated by a key, within a window")


class FromSpec(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_: str = Field(alias="from", min_length=1, description="the event field whose value to pass")
    default: ScalarValue | None = Field(None, description="the value when the field is absent")
    raw: bool = Field(
        False,
        description="true: the value enters as the event carries it; false: every text in it must "
        "pass the rules for object names (no control or bidi characters, no ../empty segments, "
        "at most 1024 bytes) or the route skips",
    )


class Canary(Model):
    """A share of the route's run keys runs another pipeline (e.g. one tracking a `canary` tag)."""

    pipeline: str = Field(description="a name under pipelines:, taking the route's params")
    percent: float = Field(gt=0, lt=100, description="the share of run keys, chosen by a hash of the key")


class Run(Model):
    pipeline: str = Field(description="a name under pipelines:")
    version: Annotated[str, Field(pattern=r"^(current|[0-9a-f]{12,64})$")] = Field(
        "current", description="current: the catalog's version at load; or a content hash (≥ 12 hex) to pin"
    )
    backend: Literal["local", "kfp", "vertex"] | None = Field(
        None, description="override the pipeline's backend"
    )
    params: dict[str, ScalarValue | FromSpec] = Field(
        default_factory=dict,
        description="pipeline parameter → literal, template with {fields}, or {from: field}",
    )
    run_key: str | None = Field(
        None,
        description="template of the idempotency key; default {route}/{event.key}, "
        "{route}/{schedule.job}@{schedule.slot} for schedules, {route}/{key}@{join.opened} for joins",
    )
    enabled: bool = Field(True, description="false: matching events are recorded as skipped")
    canary: Canary | None = Field(None, description="a share of run keys that runs another pipeline")
    raw_values: bool = Field(
        False,
        description="true: event values enter templates as they come; false: a value must pass the "
        "rules for object names (no control or bidi characters, no ../empty segments) or the route skips",
    )


class RouteModel(Model):
    name: Annotated[str, Field(pattern=NAME, description="unique; lower-case letters, digits, dashes")]
    description: str = Field("", description="for people")
    when: When = Field(description="exactly one of storage, pubsub, bigquery, schedule, join")
    run: Run = Field(description="what to start")
    limits: RouteLimits = Field(default_factory=RouteLimits, description="what the route may spend")
    partition: str | None = Field(
        None,
        description="template naming the partition a run covers, e.g. {tenant}/{date} or "
        "{table.partition}: `kfp-trigger partitions` shows each one's state",
    )
    expect: Expect | None = Field(None, description="data that must arrive on time, or an alert says so")


class PipelineModel(Model):
    source: str | None = Field(
        None,
        description="a @dsl.pipeline function: path/to/file.py:function (relative to routes.yaml), or "
        "module:function (a module beside routes.yaml, else an installed one)",
    )
    package: str | None = Field(
        None,
        description="a compiled pipeline YAML: a path (relative to routes.yaml), gs://bucket/object, "
        "or an Artifact Registry template https://REGION-kfp.pkg.dev/PROJECT/REPO/PACKAGE/TAG",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="with package: its content hash as `routes check` computes it (before notify "
        "wraps it); a package whose content differs is refused. `deploy source` writes it",
    )
    backend: Literal["local", "kfp", "vertex"] = Field(
        "local",
        description="local: kfp.local on this machine; kfp: the cluster at KFP_TRIGGER_KFP_HOST; "
        "vertex: Vertex AI Pipelines in KFP_TRIGGER_VERTEX_PROJECT",
    )
    pipeline_root: str | None = Field(
        None,
        description="gs://… where runs write their artifacts (default: the backend's); on backend "
        "local, the landing folder's stand-in for that bucket",
    )
    params: dict[str, ScalarValue] = Field(default_factory=dict, description="defaults for every route")
    notify: bool = Field(
        False, description="wrap in an exit handler that publishes the completion notice to Pub/Sub"
    )
    track: Duration | None = Field(
        None,
        description="with an Artifact Registry package named by a tag: how long one look at the tag "
        "holds (e.g. 5m); past it, the next run looks again and runs the version the tag names then",
    )


class RoutesFileModel(Model):
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
