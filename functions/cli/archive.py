"""The functions' source archive (`kfp-trigger deploy source`): exactly what the deployed
functions import and read, and nothing else.

It holds kfp-trigger's packages as installed (events, functions without its CLI, pipelines),
main.py (written here from the targets), the hashed requirements.txt, and the team's routes.yaml
as shipped: every pipeline a compiled package under packages/ with its sha256, so that a cold
start reads YAML and checks a hash, and never imports the kfp DSL or the team's Python. The
packages of pinned versions (`run.version`) ship beside them. Its bytes depend on the contents
only, so the functions are rebuilt only when code, routes or requirements change.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from functions.cli.installed import bundled, service_root
from pipelines.catalog import LoadedRoutes

PACKAGES = ("events", "functions", "pipelines")
DATA_FILES = ("*.yaml", "*.html")  # read at run time: the status page's templates
NOT_SHIPPED = ("functions/cli", "pipelines/examples")  # the tools; the examples ship compiled
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # every entry's timestamp: the archive's hash is its content's
TARGETS = ("handle_completion", "handle_event", "reconcile", "status_page")  # functions.targets'
SHIPPED = "packages"  # the folder beside the shipped routes.yaml that holds its pipelines' packages


def entry_point() -> str:
    """main.py: the Cloud Functions source entry, which re-exports the targets and nothing else."""
    names = ", ".join(TARGETS)
    listed = ", ".join(f'"{name}"' for name in TARGETS)
    return (
        '"""Cloud Functions source entry: re-exports the function targets, nothing else."""\n\n'
        f"from functions.targets import {names}\n\n__all__ = [{listed}]\n"
    )


def shipped_routes(routes: Path, loaded: LoadedRoutes) -> tuple[bytes, dict[str, bytes]]:
    """routes.yaml as the functions load it, and the packages it names (archive name → bytes).

    Each pipeline built from a source or a local package (notify applied, as the catalog built
    it) becomes `package: packages/<name>-<hash12>.yaml` with its `sha256`; a registry package
    (and any that follows its tag, `track:`) stays as written. The packages of pinned versions ship in
    packages/ too, where the functions look for them."""
    document: dict[str, Any] = yaml.safe_load(routes.read_text(encoding="utf-8"))
    files: dict[str, bytes] = {}
    for name in loaded.config.pipelines:
        pipeline = loaded.catalog[name]
        if pipeline.template_uri is not None or loaded.config.pipelines[name].track is not None:
            continue  # read from the registry at cold start, as the laptop did (a tracked one: follows)
        entry = f"{SHIPPED}/{pipeline.package.name}"
        files[entry] = pipeline.package.read_bytes()
        written = {k: v for k, v in document["pipelines"][name].items() if k not in ("source", "notify")}
        document["pipelines"][name] = {"package": entry, "sha256": pipeline.version} | written
    following = {name for name, definition in loaded.config.pipelines.items() if definition.track is not None}
    for key, pipeline in loaded.catalog.items():  # pinned versions (`name@hash12/backend`) too
        if pipeline.template_uri is None and key not in following:
            files[f"{SHIPPED}/{pipeline.package.name}"] = pipeline.package.read_bytes()
    header = (
        f"# Shipped by `kfp-trigger deploy source` from {routes.name}: every pipeline compiled into\n"
        f"# {SHIPPED}/ and checked against its sha256 at load. Edit the original, not this copy.\n"
    )
    text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return text.encode(), files


def source_files(routes: Path, loaded: LoadedRoutes) -> Iterator[tuple[str, bytes]]:
    """(archive name, bytes) of everything the functions' source holds, sorted by name."""
    root = service_root()
    shipped, packages = shipped_routes(routes, loaded)
    entries: dict[str, bytes] = {
        "main.py": entry_point().encode(),
        "requirements.txt": (bundled() / "requirements.txt").read_bytes(),
        "routes.yaml": shipped,
        **packages,
    }
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            name = path.relative_to(root).as_posix()
            if not any(name.startswith(f"{skipped}/") for skipped in NOT_SHIPPED):
                entries[name] = path.read_bytes()
        for path in (p for pattern in DATA_FILES for p in (root / package).rglob(pattern)):
            name = path.relative_to(root).as_posix()
            if not any(name.startswith(f"{skipped}/") for skipped in NOT_SHIPPED):
                entries[name] = path.read_bytes()
    yield from sorted(entries.items())


def source_archive(routes: Path, loaded: LoadedRoutes) -> bytes:
    """The functions' source as a zip whose bytes depend on the files' contents only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in source_files(routes, loaded):
            entry = zipfile.ZipInfo(name, FIXED_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
