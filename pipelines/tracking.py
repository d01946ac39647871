"""Pipelines that follow an Artifact Registry tag (`track:` in routes.yaml).

A tracked pipeline's package is named by a tag (`…-kfp.pkg.dev/PROJECT/REPO/PACKAGE/latest`).
The catalog loads the version the tag names then, from its own URL (`…/sha256:…`), so the
version is exact. `Following` is the catalog the service reads: when a tracked entry's look at
its tag is older than `track`, the next read asks the registry again and, if the tag has moved,
builds the version it names now — the next run records that version, with no restart. Each
instance looks for itself, so all of them run the new version at most `track` after the move.
Earlier versions stay readable under `NAME@HASH12` keys, as pinned variants are, so a queued
run still starts the version it was decided with. A look that fails keeps the version in use
and is tried again after `min(track, RETRY_SECONDS)`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from events.rules import PipelineDef
from pipelines import templates
from pipelines.backend import CompiledPipeline

log = logging.getLogger("kfp_trigger.tracking")
RETRY_SECONDS = 60.0


class Following(Mapping[str, CompiledPipeline]):
    """A catalog whose tracked entries follow their tags (see the module)."""

    def __init__(
        self,
        catalog: Mapping[str, CompiledPipeline],
        definitions: Mapping[str, PipelineDef],
        base_dir: Path,
        packages_dir: Path,
        notify_image: str = "",
        clock: Callable[[], float] = time.monotonic,
        tag_version: Callable[[str], str] = templates.tag_version,
    ) -> None:
        self._entries = dict(catalog)
        self._tracked = {
            name: d for name, d in definitions.items() if d.track is not None and name in catalog
        }
        self._build = (base_dir, packages_dir, notify_image)
        self._clock, self._tag_version = clock, tag_version
        self._looked = dict.fromkeys(self._tracked, clock())
        self._urls = {name: catalog[name].template_uri for name in self._tracked}  # None: notify wrapped it
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> CompiledPipeline:
        definition = self._tracked.get(name)
        if definition is not None and self._clock() - self._looked[name] >= float(definition.track or 0):
            self._look(name, definition)
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def _look(self, name: str, definition: PipelineDef) -> None:
        with self._lock:
            if self._clock() - self._looked[name] < float(definition.track or 0):
                return  # another thread looked meanwhile
            location = str(definition.package)
            try:
                url = templates.at_version(location, self._tag_version(location))
                if url != self._urls[name]:
                    self._follow(name, definition, url)
                    self._urls[name] = url
            except Exception as exc:  # the registry or the fetch failed: go on with what runs now
                log.warning(
                    "tag not followed", extra={"pipeline": name, "error": f"{type(exc).__name__}: {exc}"}
                )
                self._looked[name] = self._clock() - float(definition.track or 0) + RETRY_SECONDS
                return
            self._looked[name] = self._clock()

    def _follow(self, name: str, definition: PipelineDef, url: str) -> None:
        from pipelines.catalog import build_pipeline

        base_dir, packages_dir, notify_image = self._build
        pinned = replace(definition, package=url, track=None)
        moved = build_pipeline(pinned, base_dir, packages_dir, notify_image)
        before = self._entries[name]
        self._entries[f"{name}@{before.version[:12]}/{before.backend}"] = before
        self._entries[name] = moved
        log.info("tag followed", extra={"pipeline": name, "version": moved.version, "template": url})


def following(
    catalog: dict[str, CompiledPipeline],
    definitions: Mapping[str, PipelineDef],
    base_dir: Path,
    packages_dir: Path,
    notify_image: str = "",
) -> Mapping[str, CompiledPipeline]:
    """The catalog to serve: `Following` if a pipeline tracks a tag, else the catalog itself."""
    if not any(definition.track is not None for definition in definitions.values()):
        return catalog
    return Following(catalog, definitions, base_dir, packages_dir, notify_image)
