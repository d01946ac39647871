"""Wire the service once per process: the environment → `Settings` → `Services`.

This is the only module that reads the environment, and the only one that knows the adapters:
ledgers and sinks come from tables keyed by URL scheme, cloud clients are imported only when
their scheme is used (the embedded default never loads them), and nothing is built at import.

    ledger:  sqlite:///PATH            firestore://PROJECT/COLLECTION
    sinks:   jsonl:///PATH             pubsub://projects/P/topics/T

`services()` builds on first use and caches for warm starts; `install(services)` hands a
process ready-made services instead (the dev stack, tests); `build(settings)` wires a server's
services from settings alone; `reset()` forgets them.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from events.router import Router
from events.rules import Rule, listeners
from functions import logs
from functions.service import doctor
from functions.service.ledger import Ledger
from functions.service.ports import (
    DeadLetters,
    ObjectStore,
    Services,
    Sink,
    Telemetry,
    Untraced,
    ledger_ports,
)
from functions.settings import DEFAULT_RETENTION_DAYS, Settings, SettingsError, unknown_variables
from pipelines import catalog, tracking
from pipelines.backend import Backend, CompiledPipeline

log = logging.getLogger("kfp_trigger")

if TYPE_CHECKING:
    from pipelines.kfp.backend import KfpBackend
    from pipelines.vertex import VertexBackend


def settings(defaults: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """The `KFP_TRIGGER_*` settings of this process's environment; `overrides` win over the
    environment, which wins over `defaults`.

    Raises:
        SettingsError: a variable is malformed; the message names it.
    """
    return Settings.from_environment(defaults, **overrides)


def path_of(url: str) -> Path:
    """The file a `sqlite:///` or `jsonl:///` URL names: always an absolute path (`sqlite:////x`
    names /x too, not //x)."""
    return Path("/" + urlsplit(url).path.lstrip("/"))


def _sqlite(url: str, retention_days: int) -> Ledger:
    from functions.adapters.sqlite.ledger import SqliteLedger

    return SqliteLedger(path_of(url))  # pruned on demand: `kfp-trigger prune`


def _firestore(url: str, retention_days: int) -> Ledger:
    from functions.adapters.firestore.ledger import FirestoreLedger

    parts = urlsplit(url)
    database = parse_qs(parts.query).get("database", ["(default)"])[0]
    return FirestoreLedger(
        project=parts.netloc,
        collection=parts.path.strip("/"),
        retention_seconds=retention_days * 86400.0,
        database=database,
    )


def _jsonl(url: str) -> Sink:
    from functions.adapters.jsonl_sink import JsonlSink

    return JsonlSink(path_of(url))


def _pubsub(url: str) -> Sink:
    from functions.adapters.pubsub_sink import PubsubSink

    return PubsubSink(topic=url.removeprefix("pubsub://"))


LEDGERS: Mapping[str, Callable[[str, int], Ledger]] = {"sqlite": _sqlite, "firestore": _firestore}
SINKS: Mapping[str, Callable[[str], Sink]] = {"jsonl": _jsonl, "pubsub": _pubsub}


def ledger_from(url: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> Ledger:
    return LEDGERS[urlsplit(url).scheme](url, retention_days)


def reader_from(url: str) -> Ledger:
    """The ledger at `url`, to read only: a SQLite file is opened read-only, as it is (it must
    exist); Firestore's reads write nothing."""
    if urlsplit(url).scheme == "sqlite":
        from functions.adapters.sqlite.ledger import SqliteLedger

        return SqliteLedger(path_of(url), read_only=True)
    return ledger_from(url)


def sink_from(url: str) -> Sink:
    return SINKS[urlsplit(url).scheme](url)


def dead_letters_from(settings: Settings) -> DeadLetters | None:
    """The dead-letter subscription's reader, when one is set (KFP_TRIGGER_DEAD_LETTERS)."""
    if not settings.dead_letters:
        return None
    from functions.adapters.pubsub_dead_letters import PubsubDeadLetters

    return PubsubDeadLetters(settings.dead_letters)


def alert_sinks(settings: Settings) -> tuple[Sink, ...]:
    """The alerts sink, and the chat webhook when one is set."""
    from functions.adapters.webhook import WebhookSink

    webhook = (WebhookSink(settings.alert_webhook),) if settings.alert_webhook else ()
    return (sink_from(settings.alerts_url), *webhook)


def objects_from(settings: Settings) -> ObjectStore:
    from functions.adapters.objects import GcsObjectStore, LocalObjectStore

    return LocalObjectStore(settings.landing_dir) if settings.storage == "local" else GcsObjectStore()


def telemetry_from(settings: Settings, project: str = "") -> Telemetry:
    """Metrics and traces as KFP_TRIGGER_TELEMETRY asks (off: OpenTelemetry is not imported)."""
    if settings.telemetry == "off":
        return Untraced()
    from functions.adapters.otel import telemetry_for

    return telemetry_for(settings.telemetry, project)


def kfp_backend(settings: Settings) -> KfpBackend:
    """The `kfp` backend for the cluster the settings name."""
    from pipelines.kfp.backend import KfpBackend

    if not settings.kfp_host:
        raise SettingsError("KFP_TRIGGER_KFP_HOST is required: a pipeline has backend: kfp")
    return KfpBackend.for_host(
        settings.kfp_host,
        settings.kfp_namespace,
        token=settings.kfp_token,
        client_id=settings.kfp_client_id,
        token_file=settings.kfp_token_file,
        completion_topic=settings.completion_topic,
        timeout=(min(10.0, settings.backend_timeout_seconds), settings.backend_timeout_seconds),
    )


def vertex_backend(settings: Settings) -> VertexBackend:
    """The `vertex` backend for the project and location the settings name."""
    from pipelines.vertex import VertexBackend

    for name in ("vertex_project", "vertex_location", "vertex_pipeline_root"):
        if not getattr(settings, name):
            raise SettingsError(f"KFP_TRIGGER_{name.upper()} is required: a pipeline has backend: vertex")
    return VertexBackend(
        settings.vertex_project,
        settings.vertex_location,
        settings.vertex_pipeline_root,
        service_account=settings.vertex_service_account,
        endpoint=settings.vertex_endpoint,
        completion_topic=settings.completion_topic,
        timeout=settings.backend_timeout_seconds,
    )


def backends_for(settings: Settings, catalog: Mapping[str, CompiledPipeline]) -> dict[str, Backend]:
    """The local backend, and each cluster backend the catalog's pipelines use.

    Raises:
        SettingsError: a used backend's settings are missing.
    """
    from pipelines.local.backend import LocalBackend

    local = LocalBackend(
        settings.runs_dir,
        completion_url=settings.completion_url,
        completion_topic=settings.completion_topic,
        landing_dir=settings.landing_dir if settings.storage == "local" else None,
    )
    backends: dict[str, Backend] = {"local": local}
    used = {pipeline.backend for pipeline in catalog.values()}
    if "kfp" in used:
        backends["kfp"] = kfp_backend(settings)
    if "vertex" in used:
        backends["vertex"] = vertex_backend(settings)
    return backends


def signature_secrets(rules: Iterable[Rule], environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The signature secrets the routes name, by variable name ("" where unset), from
    `environment` (default: this process's)."""
    environment = os.environ if environment is None else environment
    listening = listeners(tuple(rules))  # a join's parts check their own signatures
    return {r.signature.secret: environment.get(r.signature.secret, "") for r in listening if r.signature}


def build(settings: Settings, environment: Mapping[str, str] | None = None) -> Services:
    """Wire a server's services; signature secrets are read from `environment` (default: this
    process's).

    Raises:
        SettingsError: settings a server needs are missing.
        RoutesError: the routes file does not validate.
    """
    from functions.adapters.oidc import Verifier

    settings.check_serving()
    environment = os.environ if environment is None else environment
    loaded = catalog.load(settings.routes, settings.packages_dir, settings.notify_image)
    secrets = signature_secrets(loaded.rules, environment)
    for rule in listeners(loaded.rules):
        if rule.signature is not None and not secrets[rule.signature.secret]:
            raise SettingsError(
                f"{rule.signature.secret} is not set: route {rule.name!r} checks signatures with it"
            )
    backends = backends_for(settings, loaded.catalog)
    # Once per instance, beside the first request rather than before it: an engine that does not
    # answer must not hold the first answer for its timeout (its submit is retried, runs.engine_of).
    threading.Thread(target=doctor.at_cold_start, args=(backends, loaded.catalog), daemon=True).start()
    return Services(
        settings=settings,
        router=Router(loaded.rules),
        limits=loaded.config.limits,
        catalog=tracking.following(
            loaded.catalog,
            loaded.config.pipelines,
            settings.routes.parent,
            settings.packages_dir,
            settings.notify_image,
        ),
        **ledger_ports(ledger_from(settings.ledger_url, settings.retention_days)),
        backends=backends,
        results=sink_from(settings.results_url),
        quarantine=sink_from(settings.quarantine_url),
        alerts=alert_sinks(settings),
        objects=objects_from(settings),
        dead_letters=dead_letters_from(settings),
        verifier=(
            Verifier(settings.auth_audience, settings.callers(), settings.auth_certs_url)
            if settings.auth == "google-oidc"
            else None
        ),
        secrets=secrets,
        telemetry=telemetry_from(settings, environment.get("GOOGLE_CLOUD_PROJECT", "")),
    )


_building = threading.Lock()
_installed: list[Services] = []


def services() -> Services:
    """The process's services: those installed, or built from the environment on first use (the
    deployed function's only input) and kept for warm starts. Concurrent first requests build once."""
    with _building:
        return _installed[0] if _installed else _cached()


@functools.cache
def _cached() -> Services:
    built = settings()
    logs.configure(built.log_format, project=os.environ.get("GOOGLE_CLOUD_PROJECT", ""))
    ready = build(built)
    for unknown in unknown_settings(also=ready.secrets):  # said once, at start
        log.warning("setting ignored", extra={"fields": {"reason": unknown}})
    return ready


def unknown_settings(also: Collection[str] = ()) -> list[str]:
    """This process's `KFP_TRIGGER_*` variables that are no setting, each with the nearest one."""
    return unknown_variables(os.environ, also)


def install(ready: Services) -> None:
    """Serve this process's targets with `ready` (the dev stack and the tests build their own)."""
    with _building:
        _installed[:] = [ready]


def reset() -> None:
    """Forget the services, so the next call builds them from the environment again."""
    with _building:
        _installed.clear()
        _cached.cache_clear()
