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
FOLDER = re.compile(r"(?:^|/)\.{0,2}/")  # a folder (a segment before a '/') empty, '.' or '..'
LAST = re.compile(r"(?:^|/)\.{1,2}\Z")  # the last segment '.' or '..'


def text_problem(text: str, *, segments: bool = True) -> str | None:
    """Why `text` may not stand in a name or a template, or None. Unicode (NFD included) is kept
    exactly as written: normalising it would name something else. `segments=False` leaves out
    the path rules, for values kfp-trigger composes itself from checked parts (`gs://…` URIs)."""
    # A character is at most 4 bytes, and ASCII holds no invisible ones: most values are let
    # through by the cheap half of each test (issue 19: this runs for every template value).
    if len(text) > MAX_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return f"is longer than {MAX_BYTES} bytes"
    if CONTROL.search(text):
        return "contains control characters"
    if not text.isascii() and INVISIBLE.search(text):
        return "contains invisible or bidirectional-control characters"
    if not segments:
        return None
    if "\\" in text or FOLDER.search(text):
        return "has a backslash, a leading '/', or an empty, '.' or '..' folder"
    if LAST.search(text):
        return "ends in '.' or '..'"
    return None
