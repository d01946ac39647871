"""The compiled routes: what `events.routes` makes of routes.yaml and the router matches.

`RoutesConfig` holds the pipeline definitions (`PipelineDef`) and one `Rule` per route, its
patterns compiled and its templates parsed; a join route's `Rule` holds a `Rule` per part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from events.filters import Filter
from events.model import Source
from events.params import ParamSpec, Scalar, Template
from events.patterns import Pattern
from events.schema import DEFAULT_MAX_WAIT, Signature
from events.schema_limits import Expect, GlobalLimits, RouteLimits


@dataclass(frozen=True, slots=True)
class PipelineDef:
    name: str
    source: str | None
    package: str | None
    backend: str
    pipeline_root: str | None
    params: Mapping[str, Scalar]
    notify: bool = False
    sha256: str | None = None  # a package's content hash, checked when it is read
    track: float | None = None  # an Artifact Registry tag is looked at again after this many seconds


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
    partition: Template | None = None  # what a run's partition is named (`kfp-trigger partitions`)
    fresh_key: Template | None = None  # expect.per: the key a run's freshness is judged by
    enabled: bool = True
    raw_values: bool = False  # event values enter templates unchecked (run.raw_values)
    pattern: Pattern | None = None  # object name or project.dataset.table
    content_types: tuple[str, ...] = ()
    min_size: int = 0
    min_rows: int = 0  # bigquery: skip a job known to have written fewer rows
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
    canary: tuple[str, float] | None = None  # run.canary: (pipeline, percent of run keys)
    limits: RouteLimits = field(default_factory=RouteLimits)
    signature: Signature | None = None  # pubsub: the producer's signature to check
    join: JoinSpec | None = None  # a join route: its parts (each a Rule), window and expiry
    part: str = ""  # a join's part: its name (its run_key is the correlation key's template)
    needs: tuple[str, ...] = ()  # a join's part: the paths of its event the run's templates read

    @property
    def batches(self) -> bool:
        """Whether its events gather into batch runs (limits.coalesce or limits.settle)."""
        return self.limits.coalesce is not None or self.limits.settle is not None


@dataclass(frozen=True, slots=True)
class JoinSpec:
    parts: tuple[Rule, ...]  # one per part, each matched like a route of its own source
    within: float
    on_expire: str  # record | alert
    needed: int = 0  # parts that complete a window (`require`; 0: all of them)
    latest: frozenset[str] = frozenset()  # parts kept `latest` (the others: their first arrival)
    on_late: str = "record"  # record | rerun

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


def pipeline_of(rule: Rule, run_key: str) -> str:
    """The catalog key of the pipeline a run of `rule` runs: the canary's for its share of run keys
    (the first 8 bytes of the key's sha256, in hundredths of a percent), else the route's. One
    key always gets the same pipeline, on every instance, and a re-run of it too."""
    if rule.canary is None:
        return rule.pipeline
    pipeline, percent = rule.canary
    share = int.from_bytes(hashlib.sha256(run_key.encode()).digest()[:8], "big") % 10_000
    return pipeline if share < percent * 100 else rule.pipeline
