"""Decoder for Cloud Storage object events (`google.cloud.storage.object.v1.*`).

Object names are opaque keys: they are read from `data.name` (never from the percent-encoded
`subject`) and never become local paths.
"""

from __future__ import annotations

from collections.abc import Mapping

from events import jsonvalues as jv
from events.errors import BadEvent
from events.model import Envelope, ObjectFinalized

MAX_NAME_BYTES = 1024  # Cloud Storage's own limit


def decode_finalized(envelope: Envelope, data: object) -> ObjectFinalized:
    obj = jv.as_object(data, "data")
    name = jv.text(obj, "name", "data")
    if len(name.encode()) > MAX_NAME_BYTES or "\r" in name or "\n" in name:
        raise BadEvent("data.name is not a valid Cloud Storage object name")
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
