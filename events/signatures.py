"""Producer signatures on Pub/Sub messages (the AWS product's messages, for example).

Pub/Sub push tells a subscriber nothing about who published, so a route can require that the
producer signed the message with a shared secret: attribute `timestamp` (Unix seconds) and
attribute `signature` = `v1=` + hex HMAC-SHA256(secret, `<timestamp>.` + the message data).
A message that is unsigned, wrongly signed, or signed further from now than `max_skew` (a
replay, or a badly skewed clock) is quarantined; a replay inside the window carries the same
`event_id`, so deduplication answers it. Comparison is in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from events.model import Message
from events.schema import Signature

VERSION = "v1="


def sign(secret: str, timestamp: int, data: bytes) -> str:
    """The `signature` attribute for a message (what the producer computes)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + data, hashlib.sha256)
    return VERSION + mac.hexdigest()


def problem(message: Message, signature: Signature, secret: str, now: float) -> str | None:
    """Why the message's signature is not acceptable, or None."""
    stamp, given = message.attributes.get("timestamp"), message.attributes.get("signature")
    if not stamp or not given:
        return "unsigned: the message has no timestamp or signature attribute"
    if not re.fullmatch(r"[0-9]{1,12}", stamp):  # ASCII digits: "²".isdigit() is True
        return "the timestamp attribute is not whole Unix seconds"
    skew = now - int(stamp)
    if abs(skew) > signature.max_skew:
        when = f"{abs(skew):.0f} s {'ago' if skew > 0 else 'in the future'}"
        return f"signed {when}, more than {signature.max_skew:g} s (a replay or a skewed clock)"
    # As bytes: compare_digest refuses str holding anything but ASCII (a TypeError, not a "no").
    if not hmac.compare_digest(
        sign(secret, int(stamp), message.data).encode(), given.encode("utf-8", "replace")
    ):
        return "the signature does not match"
    return None
