"""Decoder for Cloud Storage object events (`google.cloud.storage.object.v1.*`).

Object names are opaque keys: they are read from `data.name` (never from the percent-encoded
`subject`) and never become local paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from events import jsonvalues as jv
from events.errors import BadEvent
from events.model import Envelope, ObjectFinalized

MAX_NAME_BYTES = 1024  # Cloud Storage's own limit
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def name_problem(name: str) -> str | None:
    """Why an object name is refused, or None.

    Names stay opaque (never a local path, never a shell word), but names no tool should
    produce are quarantined rather than matched: over 1024 bytes, control characters (CR/LF,
    NUL, ESC), invisible or bidirectional-control characters (a name that reads differently
    than it matches), `.`/`..` or empty segments, a leading `/`, a backslash. Other Unicode,
    NFD included (macOS uploads), is kept exactly as written: normalising would name another
    object.
    """
    if not name:
        return "is empty"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    if CONTROL.search(name):
        return "contains control characters"
    if INVISIBLE.search(name):
        return "contains invisible or bidirectional-control characters"
    if "\\" in name or name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")[:-1]):
        return "has a backslash, a leading '/', or an empty, '.' or '..' folder"
    if name.rsplit("/", 1)[-1] in (".", ".."):
        return "ends in '.' or '..'"
    return None


def decode_finalized(envelope: Envelope, data: object) -> ObjectFinalized:
    obj = jv.as_object(data, "data")
    name = jv.text(obj, "name", "data")
    if (problem := name_problem(name)) is not None:
        raise BadEvent(f"data.name is not an acceptable object name: it {problem}")
    return ObjectFinalized(
        envelope=envelope,
        bucket=jv.text(obj, "bucket", "data"),
        name=name,
        generation=jv.int64(obj, "generation", "data"),
        metageneration=jv.int64(obj, "metageneration", "data", default=1),
        size=jv.int64(obj, "size", "data", default=0),
        content_type=_optional_text(obj, "contentType"),
    )


def _optional_text(obj: Mapping[str, object], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) else None
