"""The pipeline catalog: compile each pipeline once, version it by content, know its inputs.

`load(routes.yaml, packages)` is the one loader the function and the CLI share: it validates the
file (`events.routes`), builds every pipeline it names, and checks each route against its
pipeline, so a file that passes `kfp-trigger routes check` is a file the function accepts at
cold start.

A pipeline comes from a Python reference (`module:function` or `file.py:function`, compiled with
the KFP compiler: see `sources`) or a compiled YAML package (a local file, `gs://` or Artifact
Registry: see `templates`), which a `sha256` pins. Its version is the sha256 of the canonical
JSON of every YAML document in the package, so formatting and comments do not change it but any
change to the spec (or the KFP SDK version, which the spec embeds) does. Packages land in
`<state>/packages/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from events.errors import RoutesError
from events.locate import FILE
from events.params import coerce
from events.routes import check_routes
from events.rules import PipelineDef, RoutesConfig, Rule
from pipelines import engines, templates
from pipelines.backend import CompiledPipeline
from pipelines.parameters import BATCH_OBJECTS_PARAMETER, FILLED
from pipelines.sources import compile_source
from pipelines.templates import problem, read_template, template_uri


def content_hash(package_text: str) -> str:
    documents = [doc for doc in yaml.safe_load_all(package_text) if doc is not None]
    canonical = json.dumps(documents, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _inputs(spec: Mapping[str, Any]) -> tuple[dict[str, str], frozenset[str]]:
    """The pipeline's declared parameters and which of them have no default.

    Raises:
        ValueError: the package is not a pipeline that KFP can load as one.
    """
    name = spec.get("pipelineInfo", {}).get("name", "")
    # KFP loads components["comp-<pipeline name>"] in preference to the root DAG, so a pipeline
    # named like one of its own components would silently run that one component.
    if f"comp-{name}" in spec.get("components", {}):
        raise ValueError(f"pipeline name {name!r} is also the name of one of its components; rename one")
    declared: Mapping[str, Any] = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    inputs = {name: str(info.get("parameterType", "STRING")) for name, info in declared.items()}
    required = frozenset(
        name for name, info in declared.items() if "defaultValue" not in info and not info.get("isOptional")
    )
    return inputs, required


def _declared(package_text: str) -> dict[str, Any]:
    """What a package declares, as CompiledPipeline fields: its inputs, which are required, the
    features engines must support (`pipelines.engines`), its IR schema version.

    Raises:
        ValueError: the package is not a pipeline that KFP can load as one.
    """
    spec, *rest = [doc for doc in yaml.safe_load_all(package_text) if doc is not None]
    platform = next((doc for doc in rest if isinstance(doc, dict) and "platforms" in doc), None)
    inputs, required = _inputs(spec)
    return {
        "inputs": inputs,
        "required": required,
        "features": engines.features(spec, platform),
        "schema_version": str(spec.get("schemaVersion", "")),
    }


def build_pipeline(
    definition: PipelineDef, base_dir: Path, packages_dir: Path, notify_image: str = ""
) -> CompiledPipeline:
    """Compile or read one pipeline and store its package under its content-addressed name.

    Raises:
        Exception: whatever compiling or reading raised; the caller reports it with the name.
    """
    remote: str | None = None
    if definition.source is not None:
        text = compile_source(definition.source, base_dir)
    else:
        location = str(definition.package)
        if definition.track is not None:  # the version the tag names now, recorded as such
            location = templates.at_version(location, templates.tag_version(location))
        if reason := problem(location):
            raise ValueError(reason)
        text = read_template(location, base_dir)
        remote = template_uri(location)
        if definition.sha256 is not None and (found := content_hash(text)) != definition.sha256:
            raise ValueError(
                f"its content hash is {found}, not the sha256 {definition.sha256} routes.yaml gives"
            )
    if definition.notify:
        from pipelines.notify import notified

        text = notified(text, notify_image)
    version = content_hash(text)
    package = packages_dir / f"{definition.name}-{version[:12]}.yaml"
    if not package.exists():
        packages_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=packages_dir, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, package)
    return CompiledPipeline(
        name=definition.name,
        version=version,
        package=package,
        backend=definition.backend,
        pipeline_root=definition.pipeline_root,
        template_uri=None if definition.notify else remote,
        **_declared(text),
    )


def build_catalog(
    config: RoutesConfig, base_dir: Path, packages_dir: Path, problems: list[str], notify_image: str = ""
) -> dict[str, CompiledPipeline]:
    """Build every pipeline; each failure is added to `problems` with the pipeline's path."""
    catalog: dict[str, CompiledPipeline] = {}
    for name, definition in config.pipelines.items():
        try:
            catalog[name] = build_pipeline(definition, base_dir, packages_dir, notify_image)
        except Exception as exc:
            field = "source" if definition.source else "package"
            problems.append(f"pipelines[{name}].{field}: cannot build: {type(exc).__name__}: {exc}")
    return catalog


def pinned(pipeline: CompiledPipeline, version: str, folders: list[Path]) -> CompiledPipeline:
    """The compiled package of an earlier version of `pipeline`, found by its content hash.

    Raises:
        LookupError: no package `<name>-<hash12>.yaml` with that content hash in `folders`.
    """
    for folder in folders:
        for package in sorted(folder.glob(f"{pipeline.name}-{version[:12]}*.yaml")):
            text = package.read_text()
            if content_hash(text).startswith(version):
                return replace(
                    pipeline,
                    version=content_hash(text),
                    package=package,
                    template_uri=None,
                    **_declared(text),
                )
    searched = ", ".join(str(folder) for folder in folders)
    raise LookupError(f"no compiled package {pipeline.name}-{version[:12]}.yaml in {searched}")


def resolve_variants(
    rules: tuple[Rule, ...], catalog: dict[str, CompiledPipeline], folders: list[Path], problems: list[str]
) -> tuple[Rule, ...]:
    """Give each route whose version is pinned, or whose backend differs, its own catalog entry.

    The entry's key, `name@hash12/backend`, becomes the rule's pipeline; the run and its result
    record the version that was resolved.
    """
    result: list[Rule] = []
    for rule in rules:
        base = catalog.get(rule.pipeline)
        if base is None or (rule.version == "current" and rule.backend in (None, base.backend)):
            result.append(rule)
            continue
        try:
            variant = base if rule.version == "current" else pinned(base, rule.version, folders)
        except LookupError as exc:
            problems.append(f"routes[{rule.name}].run.version: {exc}")
            continue
        variant = replace(variant, backend=rule.backend or base.backend)
        key = f"{base.name}@{variant.version[:12]}/{variant.backend}"
        catalog[key] = variant
        result.append(replace(rule, pipeline=key))
    return tuple(result)


def typed_rules(
    rules: tuple[Rule, ...], catalog: Mapping[str, CompiledPipeline], problems: list[str]
) -> tuple[Rule, ...]:
    """Check each route's params against its pipeline's inputs and attach their declared types."""
    result: list[Rule] = []
    for rule in rules:
        pipeline = catalog.get(rule.pipeline)
        if pipeline is None:
            continue
        where = f"routes[{rule.name}].run.params"
        if rule.canary is not None and (canary := catalog.get(rule.canary[0])) is not None:
            problems.extend(_param_problems(rule, canary, rule.canary[0], where))
        problems.extend(_param_problems(rule, pipeline, rule.pipeline, where))
        batching = "coalesce" if rule.limits.coalesce is not None else "settle"
        if rule.batches and BATCH_OBJECTS_PARAMETER not in pipeline.inputs:
            problems.append(
                f"routes[{rule.name}].limits.{batching}: pipeline {rule.pipeline!r} needs a list parameter "
                f"{BATCH_OBJECTS_PARAMETER!r} to receive the batch's objects"
            )
        types = {name: pipeline.inputs[name] for name in rule.params if name in pipeline.inputs}
        problems.extend(_literal_problems(rule, types, where))
        result.append(replace(rule, param_types=types))
    return tuple(result)


def _param_problems(rule: Rule, pipeline: CompiledPipeline, called: str, where: str) -> list[str]:
    """The route's params that `pipeline` has no input for, and the inputs it needs that are not given."""
    known = ", ".join(sorted(pipeline.inputs)) or "none"
    found = [
        f"{where}.{name}: pipeline {called!r} has no such parameter ({known})"
        for name in rule.params
        if name not in pipeline.inputs
    ]
    given = set(rule.params) | FILLED
    found += [
        f"{where}: pipeline {called!r} needs parameter {name!r}" for name in sorted(pipeline.required - given)
    ]
    return found


@dataclass(frozen=True, slots=True)
class LoadedRoutes:
    config: RoutesConfig
    rules: tuple[Rule, ...]  # with parameter types from the compiled pipelines
    catalog: dict[str, CompiledPipeline]


def load(path: Path, packages_dir: Path, notify_image: str = "") -> LoadedRoutes:
    """Validate the routes file and compile every pipeline it names (`notify: true` pipelines
    with their exit step from `notify_image`, see `pipelines.notify.exit_step`).

    Raises:
        RoutesError: every problem found, each with its place in the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError([f"{FILE}: cannot read {path} ({exc.strerror})"]) from exc
    config, problems = check_routes(text)
    # Every pipeline that validated is built, and every route that compiled is checked against
    # it, even when other parts have problems: one pass reports them all.
    catalog = build_catalog(config, path.parent, packages_dir, problems, notify_image)
    # Pinned versions are looked up beside routes.yaml (packages/, committed) and in the state.
    variants = resolve_variants(config.rules, catalog, [path.parent / "packages", packages_dir], problems)
    rules = typed_rules(variants, catalog, problems)
    if problems:
        raise RoutesError(problems)
    return LoadedRoutes(config, rules, catalog)


KINDS = {
    "STRING": "text",
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
}


def _literal_problems(rule: Rule, types: Mapping[str, str], where: str) -> list[str]:
    """A literal parameter the pipeline's input cannot take: found now, not at every event."""
    found = []
    for name, spec in rule.params.items():
        declared = types.get(name)
        if declared in KINDS and isinstance(spec, bool | int | float | str):
            try:
                coerce(spec, declared)
            except ValueError:
                found.append(
                    f"{where}.{name}: {spec!r} is not {KINDS[declared]}, which the pipeline's input takes"
                )
    return found
