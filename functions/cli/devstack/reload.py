"""`kfp-trigger dev` follows routes.yaml as it is edited: each change is loaded (its pipelines
compiled) and, if it loads, served from then on by both targets, the landing watcher, the
schedule ticker and the reconciler; if it does not, the stack says why and goes on with the
routes it had."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from functions.logs import fields
from functions.settings import Settings

log = logging.getLogger("kfp_trigger.dev")


def watch_routes(
    path: Path, reload: Callable[[], None], stop: threading.Event, interval: float = 1.0
) -> None:
    """Call `reload` after each change of `path` (its modification time or its size)."""

    def stamp() -> tuple[int, int] | None:
        try:
            found = path.stat()
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    seen = stamp()
    while not stop.wait(interval):
        if (now := stamp()) != seen:
            seen = now
            reload()


def reloader(settings: Settings, buckets: set[str]) -> Callable[[], None]:
    """What a change of routes.yaml does: build the services anew and install them, and watch
    the buckets they route (`buckets`, the landing watcher's, updated in place)."""
    from events.errors import RoutesError
    from functions import bootstrap
    from functions.cli.devstack.watcher import routed_buckets
    from functions.settings import SettingsError

    def reload() -> None:
        try:
            fresh = bootstrap.build(settings)
        except (RoutesError, SettingsError) as exc:
            log.warning(
                "routes.yaml changed but does not load: still serving the routes it had",
                extra=fields(problems=str(exc)[:4000]),
            )
            return
        bootstrap.install(fresh)
        buckets.clear()
        buckets.update(routed_buckets(fresh.router.rules))
        log.info("routes.yaml reloaded", extra=fields(routes=len(fresh.router.rules)))

    return reload
