"""Producer signatures on Pub/Sub messages (the AWS product's messages, for example).

Pub/Sub push tells a subscriber nothing about who published, so a route can require that the
producer signed each message with a shared secret. The producer sets two attributes:
`timestamp` (Unix seconds, ASCII digits) and `signature` = `v2=` + hex HMAC-SHA256(secret,
canonical bytes), where the canonical bytes cover everything a route can match on:

    v2 LF <timestamp> LF <topic> LF <attributes> LF <data>

- `<topic>`: the full topic the message was published to, `projects/P/topics/T`;
- `<attributes>`: every attribute but `signature`, `timestamp` and those named `googclient_*`
  (client libraries may add those), each as `key=value` with key and value percent-encoded
  (UTF-8; every byte outside `A-Z a-z 0-9 - . _ ~` as `%XX`, upper-case hex), sorted by the
  encoded key, joined with `&` (empty when there are none);
- `<data>`: the message data, byte for byte (it comes last, so it needs no encoding).

So a signed message re-published with other attributes, or to another topic, no longer
matches. A message that is unsigned, wrongly signed, signed further from now than `max_skew`
(a replay, or a badly skewed clock), or signed without an `event_id` in its data (replays inside
the window are caught by that id) is quarantined. Comparison is in constant time.
`canonical()` and `sign()` are the reference; docs/routes.md "Signed product messages" shows producers
in Python and TypeScript.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import quote

from events.model import Message
from events.schema import Signature

VERSION = "v2="
UNSIGNED = ("signature", "timestamp")
IN_TRANSIT = "googclient_"


def covers(attribute: str) -> bool:
    """Whether a signature vouches for an attribute's value: for all but those client libraries
    may add in transit (`googclient_*`); `timestamp` is checked, `signature` is itself."""
    return not attribute.startswith(IN_TRANSIT)


def canonical(timestamp: int, topic: str, attributes: Mapping[str, str], data: bytes) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    pairs = sorted(
        (quote(key, safe=""), quote(value, safe=""))
        for key, value in attributes.items()
        if key not in UNSIGNED and covers(key)
    )
    header = "\n".join(["v2", str(timestamp), topic, "&".join(f"{key}={value}" for key, value in pairs)])
    return header.encode("ascii") + b"\n" + data


def sign(secret: str, timestamp: int, topic: str, attributes: Mapping[str, str], data: bytes) -> str:
    """The `signature` attribute for a message (what the producer computes)."""
    mac = hmac.new(secret.encode(), canonical(timestamp, topic, attributes, data), hashlib.sha256)
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
    expected = sign(secret, int(stamp), message.topic, message.attributes, message.data).encode()
    # As bytes: compare_digest refuses str holding anything but ASCII (a TypeError, not a "no").
    if not hmac.compare_digest(expected, given.encode("utf-8", "replace")):
        return "the signature does not match"
    if message.event_id is None:
        return "a signed message must carry an event_id in its data (replays are caught by it)"
    return None
