"""Wire the service once per process: settings → routes, catalog, ledger, backends, sinks.

Nothing is built at import. `services()` builds on first use and caches for warm starts; tests
call `build(settings)` or wire `Services` themselves, and `reset()` forgets the cached ones.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from events.router import Router
from events.routes import GlobalLimits
from functions import config, logs
from functions.adapters import kfp_backend, ledger_from, sink_from, vertex_backend
from functions.auth import Verifier
from functions.ledger import Ledger
from functions.objects import GcsObjectStore, LocalObjectStore, ObjectStore
from functions.settings import Settings, SettingsError
from functions.sinks import Sink
from pipelines.backend import Backend, CompiledPipeline
from pipelines.local import LocalBackend

log = logging.getLogger("kfp_trigger")


@dataclass(frozen=True)
class Services:
    settings: Settings
    router: Router
    catalog: Mapping[str, CompiledPipeline]
    ledger: Ledger
    backends: Mapping[str, Backend]
    results: Sink
    quarantine: Sink
    objects: ObjectStore | None = None  # for batch readiness
    verifier: Verifier | None = None  # None: no authentication (KFP_TRIGGER_AUTH=none)
    clock: Callable[[], float] = field(default=time.time)
    limits: GlobalLimits = field(default_factory=GlobalLimits)  # routes.yaml's top-level limits


def build(settings: Settings) -> Services:
    """Wire a server's services.

    Raises:
        SettingsError: settings a server needs are missing.
        RoutesError: the routes file does not validate.
    """
    settings.check_serving()
    loaded = config.load(settings.routes, settings.packages_dir)
    for rule in loaded.rules:
        if rule.signature is not None and not os.environ.get(rule.signature.secret):
            raise SettingsError(
                f"{rule.signature.secret} is not set: route {rule.name!r} checks signatures with it"
            )
    local = LocalBackend(
        settings.runs_dir,
        completion_url=settings.completion_url,
        completion_topic=settings.completion_topic,
        landing_dir=settings.landing_dir if settings.storage == "local" else None,
    )
    objects = LocalObjectStore(settings.landing_dir) if settings.storage == "local" else GcsObjectStore()
    backends: dict[str, Backend] = {"local": local}
    used = {pipeline.backend for pipeline in loaded.catalog.values()}
    if "kfp" in used:
        backends["kfp"] = kfp_backend(settings)
    if "vertex" in used:
        backends["vertex"] = vertex_backend(settings)
    return Services(
        settings=settings,
        router=Router(loaded.rules),
        limits=loaded.config.limits,
        catalog=loaded.catalog,
        ledger=ledger_from(settings.ledger_url),
        backends=backends,
        results=sink_from(settings.results_url),
        quarantine=sink_from(settings.quarantine_url),
        objects=objects,
        verifier=(
            Verifier(settings.auth_audience, settings.auth_emails, settings.auth_certs_url)
            if settings.auth == "google-oidc"
            else None
        ),
    )


_building = threading.Lock()


def services() -> Services:
    """The process's services, built from the environment on first use (the deployed function's
    only input) and kept for warm starts. Concurrent first requests build once."""
    with _building:
        return _cached()


@functools.cache
def _cached() -> Services:
    settings = Settings.from_env(os.environ)
    logs.configure(settings.log_format)
    return build(settings)


def reset() -> None:
    """Forget the built services, so the next call reads the environment again."""
    _cached.cache_clear()
