"""Whether one event could meet two parts of a join: a join correlates different events, and
an event that met two of its parts would fill only one (`routes check` refuses such parts).

Two parts are kept apart when they listen in different places (another bucket, topic, table or
job) or when some condition both test can never hold for one value in both: different exact
values (an attribute, a data field), present in one and absent in the other, object names or
tables whose fixed beginnings differ. Anything this cannot prove apart is an overlap: the
author adds a condition that says which event is which.
"""

from __future__ import annotations

from collections.abc import Mapping

from events.filters import AnyOf, Equals, Exists, Filter
from events.patterns import Pattern
from events.rules import Rule

WILDCARDS = "{*?["


def overlapping(first: Rule, second: Rule) -> bool:
    """Whether one event could meet both parts."""
    if first.source != second.source or (first.index and second.index and first.index != second.index):
        return False
    if "/" in first.topic and "/" in second.topic and first.topic != second.topic:
        return False
    if _patterns_apart(first.pattern, second.pattern):
        return False
    return not (_apart(first.attributes, second.attributes) or _apart(first.data, second.data))


def _apart(first: Mapping[str, Filter], second: Mapping[str, Filter]) -> bool:
    """Some key both test, no value of which could meet both filters."""
    return any(_filters_apart(first[key], second[key]) for key in first.keys() & second.keys())


def _filters_apart(first: Filter, second: Filter) -> bool:
    presence = (_presence(first), _presence(second))
    if None not in presence and presence[0] != presence[1]:
        return True
    values = (_values(first), _values(second))
    return values[0] is not None and values[1] is not None and not values[0] & values[1]


def _presence(spec: Filter) -> bool | None:
    """Whether the filter needs the field present (True) or absent (False), if it says."""
    if isinstance(spec, Exists):
        return spec.present
    return True if _values(spec) is not None else None


def _values(spec: Filter) -> frozenset[tuple[bool, object]] | None:
    """The values the filter admits, when they are a finite list (each with its bool-ness)."""
    if isinstance(spec, Equals):
        return frozenset({(isinstance(spec.value, bool), spec.value)})
    if isinstance(spec, AnyOf):
        found = [_values(option) for option in spec.options]
        return None if any(each is None for each in found) else frozenset().union(*found)  # type: ignore[arg-type]
    return None


def _patterns_apart(first: Pattern | None, second: Pattern | None) -> bool:
    if first is None or second is None:
        return False
    heads = [_head(pattern.text) for pattern in (first, second)]
    return not (heads[0].startswith(heads[1]) or heads[1].startswith(heads[0]))


def _head(text: str) -> str:
    """The fixed beginning of a pattern, up to its first capture or wildcard."""
    cut = min((text.index(mark) for mark in WILDCARDS if mark in text), default=len(text))
    return text[:cut]
