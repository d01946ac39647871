"""Run parameters built from event fields, as typed values. No eval, no str.format.

A route's `params` map pipeline parameter names to one of:

    5, 0.5, true                 a literal, copied as is
    "gs://{object.bucket}/x/"    a template: each {field} is replaced by that field's text;
                                 write {{ and }} for literal braces
    {from: data.wave, default: 1}  one field's value, typed as the event carries it

Fields are named: bare names are pattern captures; `route`, `event.*`, `object.*`, `message.*`,
`table.*`, `job.*` and `schedule.*` are fixed per source; `attributes.<key>` and `data.<path>`
read a Pub/Sub message. Substituted values are never re-parsed, so event text such as
`{0.__class__}` or `{{7*7}}` stays literal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from events import jsonvalues as jv
from events.model import Source
from events.safety import text_problem

Scalar = str | int | float | bool

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")

COMMON_FIELDS = frozenset({"route", "event.id", "event.key", "event.type", "event.source", "event.time"})
SOURCE_FIELDS: Mapping[Source, frozenset[str]] = {
    Source.STORAGE: frozenset(
        {
            "object.bucket",
            "object.name",
            "object.generation",
            "object.metageneration",
            "object.size",
            "object.content_type",
            "object.uri",
        }
    ),
    Source.PUBSUB: frozenset(
        {
            "message.id",
            "message.topic",
            "message.publish_time",
            "message.ordering_key",
            "message.event_id",
        }
    ),
    Source.BIGQUERY: frozenset(
        {
            "table.project",
            "table.dataset",
            "table.table",
            "table.id",
            "job.id",
            "job.name",
            "table.partition",
            "job.rows",
        }
    ),
    Source.SCHEDULE: frozenset({"schedule.job", "schedule.slot", "message.id"}),
}
# The fields kfp-trigger composes from checked parts (`object.uri`, …): every rule for names but
# the path rules applies to their values (`_safe`).
COMPOSED = COMMON_FIELDS.union(*SOURCE_FIELDS.values())
DYNAMIC_PREFIXES: Mapping[Source, tuple[str, ...]] = {Source.PUBSUB: ("attributes.", "data.")}


@dataclass(frozen=True, slots=True)
class FieldRef:
    path: str


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text and field references, in order."""

    parts: tuple[str | FieldRef, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(part.path for part in self.parts if isinstance(part, FieldRef))


@dataclass(frozen=True, slots=True)
class FromField:
    path: str
    default: Scalar | None = None
    raw: bool = False  # the value enters as the event carries it, unchecked (`{from: …, raw: true}`)


ParamSpec = Scalar | Template | FromField


def parse_template(text: str) -> Template:
    """Split a template into literal text and field references.

    Raises:
        ValueError: a lone brace or an empty {}.
    """
    parts: list[str | FieldRef] = []
    position = 0
    literal: list[str] = []
    for token in _PLACEHOLDER.finditer(text):
        literal.append(text[position : token.start()])
        position = token.end()
        matched = token.group(0)
        if matched in ("{{", "}}"):
            literal.append(matched[0])
        elif token.group(1) is not None and token.group(1).strip():
            parts.append("".join(literal))
            literal = []
            parts.append(FieldRef(token.group(1).strip()))
        else:
            raise ValueError(f"unbalanced or empty brace at position {token.start()} in {text!r}")
    literal.append(text[position:])
    parts.append("".join(literal))
    return Template(tuple(part for part in parts if part != ""))


def unknown_fields(paths: tuple[str, ...], source: Source, captures: tuple[str, ...]) -> list[str]:
    """The field paths a route of `source` with these captures cannot fill."""
    known = COMMON_FIELDS | SOURCE_FIELDS[source] | set(captures)
    prefixes = DYNAMIC_PREFIXES.get(source, ())
    return [
        path
        for path in paths
        if path not in known and not (path.startswith(prefixes) and len(path) > len(path.split(".")[0]) + 1)
    ]


class Missing(LookupError):
    """A field the event does not carry."""


def lookup(path: str, fields: Mapping[str, object], message: Mapping[str, Any] | None) -> object:
    """Read one field: from the flat `fields`, or from a Pub/Sub message's `attributes`/`data`.

    `message` is {"attributes": {...}, "data": <parsed payload or None>} for Pub/Sub events.

    Raises:
        Missing: the event has no such field.
    """
    if path in fields:
        return fields[path]
    head, _, rest = path.partition(".")
    if message is not None and head in ("attributes", "data"):
        value: object = message.get(head)
        for key in rest.split(".") if head == "data" else [rest]:
            if not isinstance(value, Mapping) or key not in value:
                raise Missing(path)
            value = value[key]
        return value
    raise Missing(path)


def render(
    template: Template, fields: Mapping[str, object], message: Mapping[str, Any] | None, *, raw: bool = False
) -> str:
    """Fill a template. Each value is inserted as text, never interpreted, and only if it is a
    scalar that passes the rules for names (`safety.text_problem`).

    Raises:
        Missing: a referenced field is absent.
        ValueError: a value is a JSON object or list, or text no name may hold.
    """
    return "".join(
        part if isinstance(part, str) else _safe(part.path, lookup(part.path, fields, message), raw)
        for part in template.parts
    )


def render_key(
    template: Template, fields: Mapping[str, object], message: Mapping[str, Any] | None, *, raw: bool = False
) -> str:
    """Fill a run key's template so that distinct events never share a key.

    A value followed by literal text has `%` and that text's first character percent-encoded, so
    the first occurrence of the text after the value ends it: the mapping from values to key is
    injective while every two fields are separated by text (`key_problem`). Route names, job
    names and the last field need no escape, so the default keys read as before.

    Raises:
        Missing: a referenced field is absent.
        ValueError: a value is a JSON object or list, or text no name may hold.
    """
    rendered: list[str] = []
    for position, part in enumerate(template.parts):
        if isinstance(part, str):
            rendered.append(part)
            continue
        text = _safe(part.path, lookup(part.path, fields, message), raw)
        following = template.parts[position + 1] if position + 1 < len(template.parts) else None
        if isinstance(following, str):
            for character in dict.fromkeys(("%", following[0])):
                text = text.replace(character, "".join(f"%{byte:02X}" for byte in character.encode()))
        rendered.append(text)
    return "".join(rendered)


def key_problem(template: Template) -> str | None:
    """Why a run key template could give two events one key, or None."""
    for left, right in zip(template.parts, template.parts[1:], strict=False):
        if isinstance(left, FieldRef) and isinstance(right, FieldRef):
            return (
                f"{{{left.path}}} and {{{right.path}}} must be separated by literal text, "
                "or two different events could share a run key"
            )
    return None


def _safe(path: str, value: object, raw: bool = False) -> str:
    """A value as text for a template. Free values (captures, `attributes.*`, `data.*`) pass every
    rule for names; the fields kfp-trigger composes from checked parts (`object.uri`, …) pass
    all but the path rules."""
    if isinstance(value, Mapping | list | tuple):
        raise ValueError(f"{{{path}}} is a JSON object or list, not text")
    text = _text(value)
    if not raw and (problem := text_problem(text, segments=path not in COMPOSED)):
        raise ValueError(f"the value of {{{path}}} {problem}")
    return text


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise Missing("null")
    return value if isinstance(value, str) else str(value)


def build(
    spec: ParamSpec, fields: Mapping[str, object], message: Mapping[str, Any] | None, *, raw: bool = False
) -> object:
    """One parameter's value from its spec.

    Raises:
        Missing: a referenced field is absent and there is no default.
    """
    if isinstance(spec, Template):
        return render(spec, fields, message, raw=raw)
    if isinstance(spec, FromField):
        try:
            value = lookup(spec.path, fields, message)
        except Missing:
            if spec.default is None:
                raise
            return spec.default
        return value if raw or spec.raw else gated(spec.path, value)
    return spec


def gated(path: str, value: object) -> object:
    """An event's value as a parameter takes it whole (`{from: …}`): every text in it, keys and
    items of a JSON object or list included, passes the rules for names, as a template's values
    do; numbers and booleans are left to the parameter's type (`coerce`).

    Raises:
        ValueError: a text no name may hold, named by where it is.
    """
    if isinstance(value, str):
        _safe(path, value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            gated(path, key)
            gated(path, item)
    elif isinstance(value, list | tuple):
        for item in value:
            gated(path, item)
    return value


# KFP parameter types (PipelineSpec `parameterType`) and how an event value becomes one.
def coerce(value: object, parameter_type: str) -> object:
    """Convert a built value to the pipeline's declared parameter type.

    Raises:
        ValueError: the value cannot be that type; the message names neither secret nor payload.
    """
    if parameter_type == "STRING":
        if isinstance(value, Mapping | list | tuple):
            raise ValueError("expected text, not a JSON object or list")
        return _text(value)
    if parameter_type == "NUMBER_INTEGER":
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str):
            number = jv.strict_int(value)
        if number is None or number not in jv.INT64:
            raise ValueError("expected an integer")
        return number
    if parameter_type == "NUMBER_DOUBLE":
        real = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                real = float(value)
            except OverflowError:  # an integer of hundreds of digits
                real = None
        if isinstance(value, str):
            real = jv.strict_number(value)
        if real is None or not math.isfinite(real):
            raise ValueError("expected a finite number")
        return real
    if parameter_type == "BOOLEAN":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("expected true or false")
    return value  # LIST / STRUCT: passed as the event carries them
