"""Decoder for Cloud Storage object events (`google.cloud.storage.object.v1.*`).

Object names are opaque keys: they are read from `data.name` (never from the percent-encoded
`subject`) and never become local paths.
"""

from __future__ import annotations

from collections.abc import Mapping

from events import jsonvalues as jv
from events.errors import BadEvent
from events.model import Envelope, ObjectFinalized
from events.safety import text_problem


def name_problem(name: str) -> str | None:
    """Why an object name is refused, or None: empty, or what `safety.text_problem` refuses.
    Names stay opaque (never a local path, never a shell word); names no tool should produce
    are quarantined rather than matched."""
    return "is empty" if not name else text_problem(name)


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
