"""routes.yaml and the backend settings → the inputs of the Terraform module in deploy/terraform/
(`kfp-trigger deploy plan` writes them as routes.auto.tfvars.json).

The module is written by hand; this only says what routes.yaml asks of it: which buckets,
datasets, product topics and schedules to wire, whether a route listens to the results topic,
the product message schema, and the backends' settings for the functions' environment.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from events.filters import Equals, Filter, Range, leaves
from events.model import Source
from events.rules import RoutesConfig, Rule, listeners
from functions.settings import Settings

PREFIX = "kfp-trigger"  # the module's `prefix` unless `deploy plan --prefix` says otherwise
PREFIX_SHAPE = re.compile(r"^[a-z][a-z0-9-]{2,19}$")  # as variables.tf validates it
# The topics the module creates for itself, `{prefix}-NAME`: a route may listen to the results
# topic (a chained route); any other would be a second topic of the same name, or a loop.
SERVICE_TOPICS = (
    *("dead-letter", "results-dead-letter", "quarantine", "results", "completions", "alerts"),
    *("storage-events", "bigquery-events"),  # what Cloud Storage notifies, what the audit-log sink routes
)
SCHEDULES = "schedules"  # PREFIX-schedules: the topic Cloud Scheduler jobs publish to (messaging.tf)
# The backends' settings the functions need, by backend (the module adds the infrastructure's:
# ledger, topics, storage, auth; and for Vertex the project, pipeline root and runner).
BACKEND_SETTINGS = {
    "kfp": (
        "kfp_host",
        "kfp_namespace",
        "kfp_client_id",
        "kfp_token_file",
        "backend_timeout_seconds",
        "notify_image",
    ),
    "vertex": ("vertex_location", "vertex_endpoint", "backend_timeout_seconds", "notify_image"),
}
REQUIRED = {"kfp": ("kfp_host",), "vertex": ()}


class DeployError(ValueError):
    """routes.yaml or the settings ask for what cannot be deployed; the message says what."""


def _topic(rule: Rule) -> str:
    """The short name of the topic a pubsub route listens to ("" for other routes)."""
    return rule.topic.rsplit("/", 1)[-1] if rule.source is Source.PUBSUB else ""


def results_topic(prefix: str) -> str:
    """The short name of the topic results are published to, which chained routes listen to."""
    return f"{prefix}-results"


def backend_of(config: RoutesConfig, rule: Rule) -> str:
    return rule.backend or config.pipelines[rule.pipeline].backend


def tfvars(
    config: RoutesConfig, settings: Settings, project: str, region: str, prefix: str = PREFIX
) -> dict[str, Any]:
    """The module's route-derived inputs, for a module whose resources are named `prefix`-….

    Raises:
        DeployError: a route runs on `backend: local` (kfp.local cannot run inside a Cloud
            Function), a backend's required setting is missing, or a route listens to a topic
            the module creates for itself (other than the results topic) or to the schedules topic.
    """
    if not PREFIX_SHAPE.match(prefix):
        raise DeployError(
            f"prefix {prefix!r}: 3 to 20 lower-case letters, digits or dashes, starting with a letter"
        )
    rules = [rule for rule in config.rules if rule.enabled]
    backends = route_backends(config)
    environment = _backend_environment(backends, settings)
    listening = listeners(tuple(rules))  # each route, or each part of a join: what needs a trigger
    topics = sorted({_topic(rule) for rule in listening if rule.source is Source.PUBSUB})
    _refuse_own_topics(listening, prefix)
    datasets = {_dataset(rule) for rule in listening if rule.source is Source.BIGQUERY}
    results = results_topic(prefix)
    product_topics = [topic for topic in topics if topic != results]
    return {
        "prefix": prefix,
        "project": project,
        "region": region,
        "buckets": sorted({rule.index for rule in listening if rule.source is Source.STORAGE}),
        "pipeline_root_buckets": root_buckets(config),
        "bigquery_datasets": {
            name: dict(zip(("project", "dataset"), name.split("."), strict=True)) for name in sorted(datasets)
        },
        "product_topics": product_topics,
        "product_schema": _json(product_schema(config, prefix)) if product_topics else "",
        "results_routes": results in topics,
        "schedules": {
            rule.index: {"cron": rule.cron, "time_zone": rule.timezone}
            for rule in listening
            if rule.source is Source.SCHEDULE
        },
        "vertex": "vertex" in backends,
        "backend_environment": environment,
    }


def root_buckets(config: RoutesConfig) -> list[str]:
    """The buckets of the pipelines' `gs://` roots: runs write there, the functions read metrics
    there (Vertex's default root, KFP_TRIGGER_VERTEX_PIPELINE_ROOT, the module adds itself)."""
    roots = (definition.pipeline_root or "" for definition in config.pipelines.values())
    return sorted({root.removeprefix("gs://").split("/", 1)[0] for root in roots if root.startswith("gs://")})


def route_backends(config: RoutesConfig) -> dict[str, list[str]]:
    """The enabled routes that run on each backend.

    Raises:
        DeployError: a route runs on `backend: local` (kfp.local cannot run inside a Cloud Function).
    """
    backends: dict[str, list[str]] = {}
    for rule in config.rules:
        if rule.enabled:
            backends.setdefault(backend_of(config, rule), []).append(rule.name)
    if "local" in backends:
        names = ", ".join(backends["local"])
        raise DeployError(
            f"routes {names} run on backend: local (kfp.local in a subprocess), which cannot run inside a "
            "Cloud Function: give their pipelines backend: kfp or vertex to deploy"
        )
    return backends


def _backend_environment(backends: dict[str, list[str]], settings: Settings) -> dict[str, str]:
    """The settings the deployed function needs for the backends the routes run on (`backends`:
    the routes of each).

    Raises:
        DeployError: a backend's required setting is missing.
    """
    environment: dict[str, str] = {}
    given = settings.to_environment()
    for backend in sorted(backends):
        for name in REQUIRED[backend]:
            if not getattr(settings, name):
                raise DeployError(
                    f"KFP_TRIGGER_{name.upper()} is required: routes {', '.join(backends[backend])} run on "
                    f"backend: {backend}"
                )
        for name in BACKEND_SETTINGS[backend]:
            variable = f"KFP_TRIGGER_{name.upper()}"
            if variable in given:
                environment[variable] = given[variable]
    return environment


def _refuse_own_topics(listening: Sequence[Rule], prefix: str) -> None:
    own = {f"{prefix}-{name}" for name in (*SERVICE_TOPICS, SCHEDULES)} - {results_topic(prefix)}
    for rule in listening:
        if (topic := _topic(rule)) in own:
            where = f"routes[{rule.name}].when{f'.join.parts.{rule.part}' if rule.part else ''}.pubsub.topic"
            raise DeployError(
                f"{where}: {topic} is a topic the module creates for kfp-trigger itself; a route may "
                f"listen to {results_topic(prefix)} (a chained route) and to the product's topics, not to it"
            )


def _dataset(rule: Rule) -> str:
    """`project.dataset` of a bigquery route, as its pattern names them (wildcards too): with any,
    the module routes the project's BigQuery audit entries to the functions; the routes pick."""
    text = rule.pattern.text if rule.pattern is not None else ""
    project, dataset, *_ = [*text.split("."), "*", "*"]
    return f"{project or '*'}.{dataset or '*'}"


def product_schema(config: RoutesConfig, prefix: str = PREFIX) -> dict[str, Any]:
    """An Avro record for product messages: `event_id` (the dedupe key) and every top-level data
    field a route on a product topic (any but `prefix`-results) tests, optional, of its
    condition's type."""
    fields: dict[str, str] = {}
    results = results_topic(prefix)
    product = [rule for rule in listeners(config.rules) if _topic(rule) != results]
    for rule in product:
        for path, wanted in rule.data.items():
            fields.setdefault(path.split(".", 1)[0], _avro_type(wanted))
    fields.pop("event_id", None)
    record: list[dict[str, Any]] = [{"name": "event_id", "type": "string"}]
    record += [
        {"name": name, "type": ["null", kind], "default": None} for name, kind in sorted(fields.items())
    ]
    return {"type": "record", "name": "ProductMessage", "fields": record}


def _avro_type(wanted: Filter) -> str:
    """The Avro type of the values a data filter compares: its first value's, a range's number."""
    for leaf in leaves(wanted):
        if isinstance(leaf, Equals):
            return {bool: "boolean", int: "long", float: "double"}.get(type(leaf.value), "string")
        if isinstance(leaf, Range):
            return "double"
    return "string"


def _json(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"))
