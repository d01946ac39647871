"""Strict readers for untrusted JSON: typed field access with errors that name the field.

`loads` rejects what the standard parser lets through and what attackers use: duplicate keys,
NaN/Infinity and numbers out of float range, invalid UTF-8, lone surrogates, and nesting deep
enough to exhaust the stack.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from events.errors import BadEvent
from events.model import NotJson

MAX_DEPTH = 64


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key[:64]!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} is out of range")
    return number


# One decoder for every document: json.loads builds a new one per call when given hooks.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant, parse_float=_finite
)


def _check(value: object) -> None:
    """Depth at most MAX_DEPTH, and every string (keys too) valid Unicode: the parser lets a
    lone surrogate escape such as "\\ud800" through, and it would fail later, on encoding."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((key, level) for key in item)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("a string holds a lone surrogate (not valid Unicode)") from exc


def loads(raw: bytes | str) -> Any:
    """Parse a JSON document strictly.

    Raises:
        ValueError: the document is not strict JSON; the message is safe to log.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if text.startswith("\ufeff"):  # as json.loads refuses it; the decoder alone would not say why
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise ValueError("not valid UTF-8") from exc
    except RecursionError as exc:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at position {exc.pos})") from exc
    if _may_break_rules(text, decoded=isinstance(raw, bytes)):
        _check(value)
    return value


def _may_break_rules(text: str, *, decoded: bool) -> bool:
    """Whether the document parsed from `text` could nest deeper than MAX_DEPTH or hold a lone
    surrogate, so that `_check` must walk it. Only that many brackets can nest that deep, and
    only a `\\u` escape makes a surrogate from text that is valid UTF-8 (`decoded` from bytes, or
    encodable): most events have neither and skip the walk, a fifth of their parsing (issue 19)."""
    if text.count("{") + text.count("[") > MAX_DEPTH or "\\u" in text:
        return True
    if not decoded:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def as_object(value: object, where: str) -> Mapping[str, Any]:
    if isinstance(value, NotJson):
        raise BadEvent(value.reason)
    if not isinstance(value, dict):
        raise BadEvent(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def text(obj: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadEvent(f"{where}.{key} must be a non-empty string")
    return value


# JSON's number grammar (RFC 8259 §6), ASCII digits only: Python's int() and float() also take
# "²", "٣", "1_000", " 7 " and "--7"-like inputs through isdigit(); nothing from an event may.
INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
INT64 = range(-(2**63), 2**63)


def strict_int(text: str) -> int | None:
    """The int64 `text` spells in JSON's grammar, or None."""
    if len(text) > 20 or not INTEGER.fullmatch(text):
        return None
    number = int(text)
    return number if number in INT64 else None


def strict_number(text: str) -> float | None:
    """The finite number `text` spells in JSON's grammar, or None."""
    if len(text) > 40 or not NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def int64(obj: Mapping[str, Any], key: str, where: str, *, default: int | None = None) -> int:
    """Read an int64 that JSON carries as a string (proto3 JSON) or, in some samples, a number."""
    value = obj.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, bool):
        raise BadEvent(f"{where}.{key} must be an integer")
    if isinstance(value, int) and value in INT64:
        return value
    if isinstance(value, str) and (number := strict_int(value)) is not None:
        return number
    raise BadEvent(f"{where}.{key} must be an integer (or a string of digits)")


def timestamp(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    raw = text(obj, key, where)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadEvent(f"{where}.{key} is not an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise BadEvent(f"{where}.{key} has no time zone")
    return parsed


def b64decode(value: object, where: str) -> bytes:
    """Strict standard base64: no URL-safe alphabet, no whitespace, correct padding."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise BadEvent(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadEvent(f"{where} is not valid base64") from exc
