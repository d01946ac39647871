"""What the CLI prints reaches a terminal as text, never as control: object names, event ids and
reasons come from events, and an event's sender chose them. Everything the CLI writes to
standard output and standard error passes through `Escaping`, which shows control characters
(ESC sequences that retitle or recolour a terminal, CR that overwrites a line, NUL), line and
paragraph separators and bidirectional overrides as escapes (`\\x1b`, `\\u202e`); newlines and
tabs stay. `--json` output is unchanged by it: JSON already escapes every control character.
"""

from __future__ import annotations

import re
import sys
from typing import Any, TextIO

SHOWN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escaped(text: str) -> str:
    """`text` with every character a terminal would act on shown as its escape."""
    return SHOWN.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class Escaping:
    """A text stream that writes `escaped` text to the one it wraps (attributes pass through,
    so click sees the stream's own encoding and does not go around it to the bytes)."""

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(escaped(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def guard_output() -> None:
    """Escape what this process prints from now on, results and errors (idempotent)."""
    if not isinstance(sys.stdout, Escaping):
        sys.stdout = Escaping(sys.stdout)
    if not isinstance(sys.stderr, Escaping):
        sys.stderr = Escaping(sys.stderr)
