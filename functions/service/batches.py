"""Batches (their readiness and their objects) and metrics files, read through the ports.

A route with `batch: {manifest: true}` is triggered by a manifest object, JSON
`{"objects": ["part-0000.csv", ...]}` with names relative to the manifest's folder. `ready`
checks that every listed object exists and is non-empty, and returns them with their total size.
"""

from __future__ import annotations

import logging
import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, replace

from events import jsonvalues as jv
from events.errors import BadEvent, TransientError
from events.filters import shown
from events.model import Message, ObjectFinalized
from events.storage import name_problem
from functions.logs import fields
from functions.service.ports import ObjectStore, Services
from functions.service.records import NewRun, SettleWindow, iso
from pipelines.parameters import BATCH_MANIFEST_PARAMETER, BATCH_OBJECTS_PARAMETER

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_OBJECTS = 100_000
MISSING_NAMED = 5  # missing objects named in a not-ready reason
ASKED_ONE_BY_ONE = 100  # a manifest listing more has its folder listed (`_sizes`)
MAX_METRICS_FILES = 1000  # objects listed under one run's artifact root

log = logging.getLogger("kfp_trigger.batches")


@dataclass(frozen=True, slots=True)
class Batch:
    uris: tuple[str, ...]
    total_bytes: int


class NotReady(TransientError):
    """Some objects of the batch are missing or empty; the event will be redelivered."""


def ready(store: ObjectStore, bucket: str, manifest: str) -> Batch:
    """Check a manifest's batch.

    Raises:
        BadEvent: the manifest is missing, too large or not a valid manifest (permanent).
        NotReady: some listed objects do not exist yet or are empty (retry later).
    """
    raw = store.read(bucket, manifest, MAX_MANIFEST_BYTES + 1)
    if raw is None:
        raise NotReady(f"missing: the manifest {manifest!r} itself")
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BadEvent(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        document = jv.loads(raw)  # the events' strict reader: depth, duplicates, UTF-8
    except ValueError as exc:
        raise BadEvent(f"manifest is {exc}") from exc
    listed = document.get("objects") if isinstance(document, dict) else None
    if listed is None:
        raise BadEvent('manifest is not JSON of the form {"objects": [names]}')
    if not isinstance(listed, list) or not listed or len(listed) > MAX_MANIFEST_OBJECTS:
        raise BadEvent(f"manifest must list 1 to {MAX_MANIFEST_OBJECTS} objects")
    folder = posixpath.dirname(manifest)
    names = [_member(folder, entry) for entry in listed]
    sizes = _sizes(store, bucket, folder, names)
    missing = [name for name in names if not sizes.get(name)]
    total = sum(size or 0 for size in sizes.values())
    if missing:
        named = ", ".join(repr(name) for name in missing[:MISSING_NAMED])
        more = f" and {len(missing) - MISSING_NAMED} more" if len(missing) > MISSING_NAMED else ""
        raise NotReady(f"missing or empty: {len(missing)} of {len(names)} objects: {named}{more}")
    return Batch(tuple(f"gs://{bucket}/{name}" for name in names), total)


def _sizes(store: ObjectStore, bucket: str, folder: str, names: list[str]) -> dict[str, int | None]:
    """Each named object's size (None: it does not exist). A few are asked for one by one; a
    large batch's folder is listed instead, a page per 1,000 objects, rather than one request
    per object (20,000 requests would outlast the function's timeout)."""
    if len(names) <= ASKED_ONE_BY_ONE:
        return {name: store.size(bucket, name) for name in names}
    wanted, sizes = set(names), dict[str, int | None]()
    for found in store.objects(bucket, f"{folder}/" if folder else ""):
        if found.name in wanted:
            sizes[found.name] = found.size
            if len(sizes) == len(wanted):
                break
    return sizes


def batch_params(services: Services, run: NewRun) -> dict[str, object]:
    """A run's parameters with its batch's objects, which the ledger keeps as the run's members
    (a coalesced batch's, and a manifest's: `runs.launch` stores them apart from the run)."""
    params = dict(run.params)
    if BATCH_OBJECTS_PARAMETER in params:
        return params
    if BATCH_MANIFEST_PARAMETER not in params and not coalesced(services, run):
        return params
    if members := services.queue.members(run.run_key):
        params[BATCH_OBJECTS_PARAMETER] = members
    return params


def gather(
    services: Services, event: ObjectFinalized | Message, run: NewRun, window: float | SettleWindow
) -> tuple[str, bool, str]:
    """Add the object or message to its route's batch for this run key: the run key of the batch
    that holds it, whether this event added it (False: a batch of the route holds it already —
    a redelivery, however late), and what the batch waits for (a settle window's story)."""
    now = services.clock()
    batch = replace(run, trace=run.trace or services.telemetry.current())
    member = f"gs://{event.bucket}/{event.name}" if isinstance(event, ObjectFinalized) else event.key
    if isinstance(window, float):
        return (*coalesce(services, batch, member, event.key, window), "")
    settled = services.queue.settle(batch, window, member, event.key, now)
    if isinstance(settled, str):
        return settled, False, ""
    return settled.run_key, True, f": {settled.story()}"


def coalesce(services: Services, run: NewRun, member: str, identity: str, window: float) -> tuple[str, bool]:
    """Add `member` to `run`'s coalescing window, aligned to the epoch (`batch_key`).

    The batch is a QUEUED run created by the window's first event; it starts when the window
    closes, with every object in `batch_objects`. An object that arrives after its window's run
    was taken, and is in no batch yet, gets a batch of its own, due at once, rather than be lost.
    """
    now = services.clock()
    key, closes = batch_key(run.run_key, now, window)
    batch = replace(run, run_key=key)
    held = services.queue.join_batch(batch, closes, member, identity, now)
    if held is None:  # the window's run has started without it
        batch = replace(batch, run_key=f"{batch.run_key}+{identity}")
        held = services.queue.join_batch(batch, now, member, identity, now)
    if held is None:  # only if that batch of its own started without it: ask for a redelivery
        raise TransientError(f"batch {batch.run_key} started while the object was joining it")
    return held


def batch_key(run_key: str, now: float, window: float) -> tuple[str, float]:
    """The run key of a coalescing window's batch at `now` (windows are aligned to the epoch),
    and when that window closes."""
    opened = now // window * window
    return f"{run_key}@{iso(opened)}", opened + window


def coalesced(services: Services, run: NewRun) -> bool:
    """Whether `run` may be a batch: its route coalesces or settles (or is not known any more)."""
    rule = services.router.by_name.get(run.route)
    return rule is None or rule.batches


def _member(folder: str, entry: object) -> str:
    """An entry as an object name: text passing the rules for names (as an event's object name
    must), relative to the manifest's folder."""
    if not isinstance(entry, str) or not entry:
        raise BadEvent("manifest entries must be object names relative to the manifest's folder")
    name = f"{folder}/{entry}" if folder else entry
    if (problem := name_problem(entry) or name_problem(name)) is not None:
        raise BadEvent(f"manifest entry {shown(entry)} is not an acceptable object name: it {problem}")
    return name


def metrics_at(store: ObjectStore, outputs: Mapping[str, str]) -> dict[str, float]:
    """Metrics written as JSON into the files of a run's `…metrics` output artifacts.

    On a cluster, metric values live in the engine's metadata store, not in the artifact file;
    a metrics component that also writes `{"name": number}` to its artifact's path makes them
    readable from the `gs://` pipeline root. Unreadable or non-JSON files are skipped.
    """
    uris = [uri for name, uri in sorted(outputs.items()) if name.endswith("metrics")]
    return _metrics_in(store, [uri for uri in uris if uri.startswith("gs://")])


def metrics_under(store: ObjectStore, root: str) -> dict[str, float]:
    """Metrics written as JSON into every `…metrics` artifact under a run's `gs://` artifact root
    (where KFP writes `<root>/<task>/<salt>/<output>`: its API does not list artifact URIs)."""
    bucket, _, prefix = root.removeprefix("gs://").partition("/")
    names = store.list(bucket, prefix, MAX_METRICS_FILES)
    return _metrics_in(store, [f"gs://{bucket}/{name}" for name in names if name.endswith("metrics")])


def _metrics_in(store: ObjectStore, uris: list[str]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for uri in uris:
        bucket, _, path = uri.removeprefix("gs://").partition("/")
        raw = store.read(bucket, path, MAX_MANIFEST_BYTES)
        try:
            values = jv.loads(raw) if raw else {}
        except ValueError as exc:  # the run's other metrics are still published
            log.warning("metrics file skipped", extra=fields(uri=uri, reason=str(exc)))
            continue
        if isinstance(values, dict):
            found = {name: _finite(value) for name, value in values.items()}
            metrics.update({name: value for name, value in found.items() if value is not None})
    return metrics


def _finite(value: object) -> float | None:
    """A metric's value as a finite float, or None (text, booleans, numbers past a double)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
