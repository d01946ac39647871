"""Check Terraform files against the google provider's published schema, without the provider.

`terraform validate` needs the provider binary, which only the registry serves. The schema is
also published, generated from the provider, as the CDKTF bindings on PyPI
(`cdktf-cdktf-provider-google`, a test-only dependency pinned to provider 6.50): each resource's
`<Name>Config.__init__` takes exactly the resource's arguments and blocks, and each block's class
its own. They are read here with `ast` from the package's files (never imported: importing needs
Node.js), so a misspelt or removed argument, at any depth, is found.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import hcl2

META = frozenset({"count", "for_each", "depends_on", "lifecycle", "provider"})
CDKTF_META = frozenset({"connection", "provisioners", "id"}) | META
CLASS_NAME = re.compile(r"\b([A-Z]\w+)\b")


@functools.cache
def _bindings() -> Path:
    spec = importlib.util.find_spec("cdktf_cdktf_provider_google")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the provider schema is a dev dependency: pip install '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _classes(module: str) -> dict[str, dict[str, str | None]]:
    """Every class of one binding module: its `__init__`'s keyword arguments, each with the
    nested block class its annotation names (None for a plain argument)."""
    path = _bindings() / module / "__init__.py"
    if not path.exists():
        return {}
    tree = ast.parse(path.read_text())
    found: dict[str, dict[str, str | None]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                arguments = {}
                for argument in item.args.kwonlyargs:
                    annotation = ast.unparse(argument.annotation) if argument.annotation else ""
                    arguments[argument.arg] = annotation
                found[node.name] = arguments
    for arguments in found.values():  # a block's annotation names its class (quoted or not)
        for name, annotation in arguments.items():
            named = [word for word in CLASS_NAME.findall(annotation or "") if word in found]
            arguments[name] = named[0] if named else None
    return found


def schema_of(kind: str, data: bool) -> tuple[str, dict[str, dict[str, str | None]]] | None:
    """(the Config class, every class of its module) of a resource or data source type:
    google_firestore_field → firestore_field.FirestoreFieldConfig, data google_project →
    data_google_project.DataGoogleProjectConfig."""
    module = f"data_{kind}" if data else kind.removeprefix("google_")
    config = "".join(part.capitalize() for part in module.split("_")) + "Config"
    classes = _classes(module)
    return (config, classes) if config in classes else None


def problems(text: str) -> list[str]:
    """Every argument or block in `text` (Terraform) that the provider's schema does not have,
    as `type.name: path`; and every resource type it does not know."""
    parsed = hcl2.loads(text)
    found: list[str] = []
    for section, data in (("resource", False), ("data", True)):
        for block in parsed.get(section, []):
            for kind, named in block.items():
                kind = kind.strip('"')
                schema = schema_of(kind, data)
                for name, body in named.items():
                    where = f"{'data.' if data else ''}{kind}.{name.strip(chr(34))}"
                    if schema is None:
                        found.append(f"{where}: no such {'data source' if data else 'resource'} type")
                        continue
                    config, classes = schema
                    found += _check(body, classes[config], classes, where, META)
    return found


def _check(
    body: Mapping[str, Any],
    allowed: Mapping[str, str | None],
    classes: Mapping[str, Mapping[str, str | None]],
    where: str,
    meta: frozenset[str] = frozenset(),
) -> list[str]:
    found = []
    for key, value in body.items():
        if key in meta or key.startswith("__"):
            continue
        if key == "dynamic" and isinstance(value, list):  # dynamic "NAME" { content { … } }: a NAME block
            for generated in value:
                for name, block in generated.items():
                    content = block.get("content", []) if isinstance(block, dict) else []
                    found += _check({name.strip('"'): content}, allowed, classes, where)
            continue
        if key not in allowed or key in CDKTF_META - {"id"}:
            found.append(f"{where}: unknown argument {key!r}")
            continue
        nested = allowed[key]
        if nested is not None and nested in classes and isinstance(value, list):
            for block in value:
                if isinstance(block, dict):
                    found += _check(block, classes[nested], classes, f"{where}.{key}")
    return found


def references(text: str) -> Iterator[str]:
    """Every var., local., resource and data reference in `text`."""
    pattern = r"\b(var\.\w+|local\.\w+|data\.google_\w+\.\w+|google_\w+\.\w+)"
    for match in re.finditer(pattern, text):
        reference = match[1]
        if not reference.endswith((".googleapis", ".iam")):
            yield reference


def declared(texts: list[str]) -> set[str]:
    """What the files declare, as references name it."""
    names: set[str] = set()
    for text in texts:
        parsed = hcl2.loads(text)
        for block in parsed.get("variable", []):
            names |= {f"var.{name.strip(chr(34))}" for name in block}
        for block in parsed.get("locals", []):
            names |= {f"local.{name}" for name in block if not name.startswith("__")}
        for section, prefix in (("resource", ""), ("data", "data.")):
            for block in parsed.get(section, []):
                for kind, named in block.items():
                    names |= {f"{prefix}{kind.strip(chr(34))}.{name.strip(chr(34))}" for name in named}
    return names
