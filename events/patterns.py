"""Name patterns with named captures, compiled once to anchored regular expressions.

    responses/{tenant}/{date}/_SUCCESS   {name} captures one segment (no separator inside)
    exports/*.csv                         *  matches within one segment, captures nothing
    archive/**                            ** matches across segments, captures nothing

Everything else is literal. The separator is `/` for object names and `.` for BigQuery tables
(`project.dataset.table`).

Matching takes time linear in the name, whatever the pattern: anyone who may upload to a watched
bucket chooses the name, and Python's backtracking `re` took 88 s of CPU to refuse a 1 KB name
against `responses/{tenant}-{region}-{date}-*.csv`. A pattern whose wildcards are each followed by
a separator before the next one (and `**` only last), like `responses/{tenant}/{date}/*.csv`,
cannot make `re` backtrack more than once per wildcard, so it runs on `re` (fast: about 1 µs).
Any other pattern runs on RE2 (google-re2: linear time always, but ~15 µs a call from Python).
RE2 picks submatches leftmost-first like `re`, so captures read the same on either engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\{([^{}]*)\}|\*\*|\*")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    regex: Any  # an `re` or RE2 pattern (google-re2 ships no types)
    captures: tuple[str, ...]

    @property
    def literal(self) -> bool:
        return not self.captures and "*" not in self.text

    @property
    def example(self) -> str:
        """A name it matches: each capture and wildcard standing for one plain character (the
        name the rules for names are least likely to refuse)."""
        return _TOKEN.sub("x", self.text)

    def match(self, value: str) -> dict[str, str] | None:
        """The captures, or None. Text that is not valid Unicode (a lone surrogate, which the
        envelope already refuses) matches nothing, on either engine."""
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:  # RE2 could not even take it: it encodes to UTF-8 first
                return None
        found = self.regex.fullmatch(value)
        return None if found is None else dict(found.groupdict())


def compile_pattern(text: str, separator: str = "/") -> Pattern:
    """Compile a pattern.

    Raises:
        ValueError: a capture name is not a lower-case identifier, or is used twice.
    """
    segment = f"[^{re.escape(separator)}]"
    parts: list[str] = []
    captures: list[str] = []
    position = 0
    linear = True  # see the module docstring
    previous = None  # the last wildcard token
    for token in _TOKEN.finditer(text):
        between = text[position : token.start()]
        if previous == "**" or (previous is not None and separator not in between):
            linear = False
        previous = token.group(0)
        parts.append(re.escape(between))
        name = token.group(1)
        if name is not None:
            if not _NAME.match(name):
                raise ValueError(f"capture {{{name}}} must be a lower-case identifier")
            if name in captures:
                raise ValueError(f"capture {{{name}}} appears twice")
            captures.append(name)
            parts.append(f"(?P<{name}>{segment}+)")
        elif token.group(0) == "**":
            parts.append(".*")
        else:
            parts.append(f"{segment}*")
        position = token.end()
    parts.append(re.escape(text[position:]))
    regex = "(?s)" + "".join(parts)
    if linear:
        return Pattern(text, re.compile(regex), tuple(captures))
    import re2  # only routes.yaml files with such patterns pay its import (~5 ms)

    return Pattern(text, re2.compile(regex), tuple(captures))
