"""Checks of a route that its model and compiled templates answer: how it gathers events
(`limits.coalesce`, `limits.settle`) and what a join's `require` asks of its run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from events.model import Source
from events.params import FromField, Template
from events.schema import RouteModel


def check_batching(model: RouteModel, source: Source, where: str, problems: list[str]) -> None:
    """`limits.coalesce` (storage) and `limits.settle` (storage, Pub/Sub) gather the events of one
    run key: the route must name that key, and choose one of the two."""
    limits = model.limits
    for name, sources in (("coalesce", (Source.STORAGE,)), ("settle", (Source.STORAGE, Source.PUBSUB))):
        if getattr(limits, name) is None:
            continue
        if source not in sources:
            kinds = " and ".join(f"{kind} routes" for kind in sources)
            problems.append(f"{where}.limits.{name}: only {kinds} can {name} their events")
        elif model.run.run_key is None:
            problems.append(
                f"{where}.limits.{name}: set run.run_key to the batch's key (e.g. '{{route}}/{{date}}'); "
                "the default key is one per event"
            )
    if limits.coalesce is not None and limits.settle is not None:
        problems.append(f"{where}.limits: coalesce (fixed windows) or settle (quiet windows), not both")


def join_needed(require: object, count: int, where: str, problems: list[str]) -> int:
    """The parts that complete a window, from `require` (0: every one)."""
    if require == "any":
        return 1
    at_least = getattr(require, "at_least", None)
    if at_least is None or at_least == count:
        return 0
    if at_least > count:
        problems.append(f"{where}.at_least: {at_least} is more than the join's {count} parts")
    return int(at_least)


def optional_reads(run: Mapping[str, Any], where: str, problems: list[str]) -> None:
    """A window that completes without every part: the run may read a part's field only where
    a default stands in for it."""
    specs = {"run_key": run["run_key"], **{f"params.{name}": spec for name, spec in run["params"].items()}}
    for place, spec in specs.items():
        reads = spec.fields if isinstance(spec, Template) else ()
        if isinstance(spec, FromField) and spec.default is None:
            reads = (spec.path,)
        for path in reads:
            if path.startswith("parts."):
                problems.append(
                    f"{where}.run.{place}: reads {path}, but with join.require a part may be missing: "
                    f"pass it as {{from: {path}, default: …}}"
                )
