"""What text from an event may stand in a name: object names, and every value substituted into a
template (parameters, run keys). One set of rules, so that a value cannot smuggle in what an
object name could not: control characters (CR/LF, NUL, ESC), invisible or bidirectional-control
characters (text that reads differently than it matches), `.`/`..` or empty path segments, a
leading `/`, a backslash, or more than 1024 bytes.
"""

from __future__ import annotations

import re

MAX_BYTES = 1024  # Cloud Storage's own limit on object names
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def text_problem(text: str, *, segments: bool = True) -> str | None:
    """Why `text` may not stand in a name or a template, or None. Unicode (NFD included) is kept
    exactly as written: normalising it would name something else. `segments=False` leaves out
    the path rules, for values kfp-trigger composes itself from checked parts (`gs://…` URIs)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return f"is longer than {MAX_BYTES} bytes"
    if CONTROL.search(text):
        return "contains control characters"
    if INVISIBLE.search(text):
        return "contains invisible or bidirectional-control characters"
    if not segments:
        return None
    parts = text.split("/")
    if "\\" in text or text.startswith("/") or any(part in ("", ".", "..") for part in parts[:-1]):
        return "has a backslash, a leading '/', or an empty, '.' or '..' folder"
    if parts[-1] in (".", ".."):
        return "ends in '.' or '..'"
    return None
