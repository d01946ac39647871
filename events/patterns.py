"""Name patterns with named captures, compiled once to anchored regular expressions.

    responses/{tenant}/{date}/_SUCCESS   {name} captures one segment (no separator inside)
    exports/*.csv                         *  matches within one segment, captures nothing
    archive/**                            ** matches across segments, captures nothing

Everything else is literal. The separator is `/` for object names and `.` for BigQuery tables
(`project.dataset.table`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\{([^{}]*)\}|\*\*|\*")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    captures: tuple[str, ...]

    @property
    def literal(self) -> bool:
        return not self.captures and "*" not in self.text

    def match(self, value: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(value)
        return None if found is None else found.groupdict()


def compile_pattern(text: str, separator: str = "/") -> Pattern:
    """Compile a pattern.

    Raises:
        ValueError: a capture name is not a lower-case identifier, or is used twice.
    """
    segment = f"[^{re.escape(separator)}]"
    parts: list[str] = []
    captures: list[str] = []
    position = 0
    for token in _TOKEN.finditer(text):
        parts.append(re.escape(text[position : token.start()]))
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
    return Pattern(text, re.compile("".join(parts), re.DOTALL), tuple(captures))
