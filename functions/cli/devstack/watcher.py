"""The landing folder as a bucket: new files under `landing/<bucket>/<object name>` become
storage `finalized` CloudEvents, posted over HTTP as Eventarc would (generation = the file's
mtime in ns)."""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import threading
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path

from events.eventarc import Delivery, object_finalized
from events.model import Source
from events.rules import Rule, listeners
from functions.cli.devstack.server import post
from functions.logs import fields

log = logging.getLogger("kfp_trigger.dev")


def finalized_event(bucket: str, name: str, path: Path) -> Delivery:
    """The `finalized` delivery for a landed file."""
    stat = path.stat()
    return object_finalized(
        bucket,
        name,
        generation=stat.st_mtime_ns,
        size=stat.st_size,
        updated=datetime.fromtimestamp(stat.st_mtime, UTC),
        content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
    )


def landing_name(landing: Path, path: Path) -> tuple[str, str] | None:
    """(bucket, object name) for a file under the landing folder; None for folders, temp files."""
    try:
        relative = path.resolve().relative_to(landing.resolve())
    except ValueError:
        return None
    parts = relative.parts
    if len(parts) < 2 or any(part.startswith(".") for part in parts) or not path.is_file():
        return None
    return parts[0], "/".join(parts[1:])


def routed_buckets(rules: Sequence[Rule]) -> set[str]:
    """The buckets a storage route (or a join's storage part) listens to: where Eventarc would
    have a trigger."""
    return {rule.index for rule in listeners(tuple(rules)) if rule.source is Source.STORAGE}


def watch_landing(
    landing: Path, events_url: str, stop: threading.Event, buckets: Collection[str] | None = None
) -> None:
    """Post a `finalized` event for every file added or rewritten under `landing`, in `buckets`
    only if given: as deployed, where Eventarc has a trigger on a routed bucket only, so a run's
    artifacts written to its pipeline root's bucket start nothing.

    watchfiles wakes the loop on a change (or every 2 s); each wake-up compares the folder with
    what was delivered, by modification time, so a file is delivered whether it landed before
    the watcher started watching, while it started, or after. Like Eventarc, an event answered
    non-2xx is delivered again at the next wake-up.
    """
    import watchfiles

    landing.mkdir(parents=True, exist_ok=True)
    delivered: dict[Path, int] = {}
    pending: list[Delivery] = []
    for _ in watchfiles.watch(
        landing,
        stop_event=stop,
        debounce=200,
        step=50,
        rust_timeout=2000,
        yield_on_timeout=True,
        raise_interrupt=False,
    ):
        for path in sorted(landing.rglob("*")):
            names = landing_name(landing, path)
            if names is None or (buckets is not None and names[0] not in buckets):
                continue
            with contextlib.suppress(FileNotFoundError):  # gone again already
                modified = path.stat().st_mtime_ns
                if delivered.get(path) != modified:
                    delivered[path] = modified
                    pending.append(finalized_event(names[0], names[1], path))
        retry = []
        for headers, data in pending:
            status = post(events_url, headers, data)
            log.info("delivered", extra=fields(subject=headers["ce-subject"], status=status))
            if status >= 300:
                retry.append((headers, data))
        pending = retry
