"""The routes.yaml reference, generated from its JSON Schema: one table per part of the file.

`kfp-trigger routes schema` prints the schema (for editors: point the YAML language server at
it); `kfp-trigger routes reference` prints this Markdown, committed as docs/routes-reference.md
and compared with the schema by the tests, so the reference cannot drift from the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from events.schema import json_schema

# Parts in reading order: (schema name, where it sits in routes.yaml)
PARTS = (
    ("RoutesDocument", "the file"),
    ("GlobalLimits", "limits"),
    ("PipelineModel", "pipelines.NAME"),
    ("RouteModel", "routes[]"),
    ("When", "routes[].when"),
    ("StorageWhen", "when.storage"),
    ("Batch", "when.storage.batch"),
    ("PubsubWhen", "when.pubsub"),
    ("Signature", "when.pubsub.signature"),
    ("Comparison", "a filter: when.pubsub.attributes.KEY, when.pubsub.data.PATH, when.storage.name"),
    ("BigQueryWhen", "when.bigquery"),
    ("ScheduleWhen", "when.schedule"),
    ("Join", "when.join"),
    ("JoinPart", "when.join.parts.NAME"),
    ("AtLeast", "when.join.require"),
    ("Run", "routes[].run"),
    ("FromSpec", "run.params.NAME (a field)"),
    ("Canary", "run.canary"),
    ("RouteLimits", "routes[].limits"),
    ("Rate", "limits.rate"),
    ("Settle", "limits.settle"),
    ("Concurrency", "limits.concurrency"),
    ("Expect", "routes[].expect"),
)


def type_of(prop: Mapping[str, Any]) -> str:
    if '"#/$defs/Comparison"' in json.dumps(prop.get("oneOf", [])):  # a filter: its own section
        return "[filter](#comparison)"
    if "$ref" in prop:
        return f"[{prop['$ref'].rsplit('/', 1)[-1]}](#{prop['$ref'].rsplit('/', 1)[-1].lower()})"
    if "enum" in prop:
        return " \\| ".join(f"`{value}`" for value in prop["enum"])
    if "anyOf" in prop or "oneOf" in prop:
        options = prop.get("anyOf", prop.get("oneOf", []))
        kinds = [type_of(option) for option in options if option.get("type") != "null"]
        return " or ".join(dict.fromkeys(kinds))
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {type_of(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        named = list(prop.get("patternProperties", {}).values())  # names checked by a pattern
        values = values if isinstance(values, dict) else (named[0] if named else None)
        return f"map of {type_of(values)}" if isinstance(values, dict) else "map"
    if kind == "string" and "pattern" in prop:
        return f"string `{prop['pattern']}`"
    return str(kind)


def render() -> str:
    schema = json_schema()
    definitions = {**schema["$defs"], "RoutesDocument": schema}
    lines = [
        "# routes.yaml reference",
        "",
        "Generated from the schema by `kfp-trigger routes reference`; do not edit. The JSON Schema",
        "itself: `kfp-trigger routes schema`. Durations are seconds or `90s`, `10m`, `2h`, `1d`.",
    ]
    for name, where in PARTS:
        definition = definitions[name]
        lines += [
            "",
            f"## {name}",
            "",
            f"`{where}`" + (f": {definition['description']}" if "description" in definition else ""),
        ]
        lines += ["", "| field | type | default | meaning |", "|---|---|---|---|"]
        required = set(definition.get("required", ()))
        for field, prop in definition.get("properties", {}).items():
            default = (
                "required"
                if field in required
                else json.dumps(prop.get("default"))
                if "default" in prop
                else "—"
            )
            meaning = str(prop.get("description", "")).replace("|", "\\|")
            lines.append(f"| `{field}` | {type_of(prop)} | {default} | {meaning} |")
    return "\n".join(lines) + "\n"
