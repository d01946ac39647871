"""Filters: what a route requires of a message's attribute, a data field or an object's name.

As written in routes.yaml (`events.schema.Comparison`), compiled once by `compile_filter`:

    survey.closed                   equal to this value (JSON equality: true is not 1)
    [eu, us]                        any of these filters
    {prefix: "acme-"}               text that starts so      {suffix: ".csv"}  text that ends so
    {gte: 0.5, lt: 1}               a number in the range (gt, gte, lt, lte)
    {exists: true}                  the field is there (false: it is not)
    {not: [draft, deleted]}         the filter inside does not hold (an absent field too)

Every comparator of one mapping must hold; a list holds when any of its filters does.
Evaluation takes time linear in the value and the filter, whatever either holds: each
comparator looks at the value once (startswith, endswith, one number parse, one equality),
with no pattern engine and no backtracking (bench/filters.py measures it).

An absent field (`ABSENT`) meets only `exists: false` and negations. Attributes are always text:
a range reads an attribute's text as a decimal number (`text=True`); for data fields a range
holds only for JSON numbers.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

ABSENT: Final = object()  # the field is not in the event

_DECIMAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")  # ASCII: "٣".isdigit()
RANGES: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


class Filter(Protocol):
    """A compiled filter: `holds(value)` for a value or ABSENT; `text` as written, for reasons."""

    @property
    def text(self) -> str: ...

    def holds(self, value: object) -> bool: ...


@dataclass(frozen=True, slots=True)
class Equals:
    value: object
    text: str

    def holds(self, value: object) -> bool:
        return isinstance(value, bool) == isinstance(self.value, bool) and value == self.value


@dataclass(frozen=True, slots=True)
class Prefix:
    start: str
    text: str

    def holds(self, value: object) -> bool:
        return isinstance(value, str) and value.startswith(self.start)


@dataclass(frozen=True, slots=True)
class Suffix:
    end: str
    text: str

    def holds(self, value: object) -> bool:
        return isinstance(value, str) and value.endswith(self.end)


@dataclass(frozen=True, slots=True)
class Range:
    bounds: tuple[tuple[Callable[[Any, Any], bool], int | float], ...]  # (comparison, bound): all hold
    from_text: bool  # the value is text holding a decimal number (a message attribute)
    text: str

    def holds(self, value: object) -> bool:
        number = _number(value, self.from_text)
        return number is not None and all(compare(number, bound) for compare, bound in self.bounds)


@dataclass(frozen=True, slots=True)
class Exists:
    present: bool
    text: str

    def holds(self, value: object) -> bool:
        return (value is not ABSENT) == self.present


@dataclass(frozen=True, slots=True)
class Not:
    inner: Filter
    text: str

    def holds(self, value: object) -> bool:
        return not self.inner.holds(value)


@dataclass(frozen=True, slots=True)
class AnyOf:
    options: tuple[Filter, ...]
    text: str

    def holds(self, value: object) -> bool:
        return any(option.holds(value) for option in self.options)


@dataclass(frozen=True, slots=True)
class AllOf:
    terms: tuple[Filter, ...]
    text: str

    def holds(self, value: object) -> bool:
        return all(term.holds(value) for term in self.terms)


def _number(value: object, from_text: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value  # compared exactly: Python compares an int with a float without rounding it
    if from_text and isinstance(value, str) and len(value) <= 64 and _DECIMAL.fullmatch(value):
        return float(value)
    return None


def shown(spec: object) -> str:
    """A filter as written, compactly (JSON flow style): for reasons and problems."""
    return json.dumps(spec, ensure_ascii=False, separators=(", ", ": "), default=str)


def compile_filter(spec: object, *, text: bool = False) -> Filter:
    """A filter from its routes.yaml form (validated by `events.schema`): a scalar, a list, or
    a mapping of comparators (`not` as written, or `not_` from the model's dump).

    `text`: the values are text (attributes, object names): a range reads them as numbers."""
    if isinstance(spec, list | tuple):
        return AnyOf(tuple(compile_filter(option, text=text) for option in spec), shown(list(spec)))
    if isinstance(spec, Mapping):
        given = {("not" if key == "not_" else key): value for key, value in spec.items() if value is not None}
        return _comparators(given, text)
    return Equals(spec, shown(spec))


def _comparators(given: Mapping[str, Any], text: bool) -> Filter:
    terms: list[Filter] = []
    if "prefix" in given:
        terms.append(Prefix(given["prefix"], shown({"prefix": given["prefix"]})))
    if "suffix" in given:
        terms.append(Suffix(given["suffix"], shown({"suffix": given["suffix"]})))
    bounds = {name: given[name] for name in RANGES if name in given}
    if bounds:
        pairs = tuple((RANGES[name], bound) for name, bound in bounds.items())
        terms.append(Range(pairs, text, shown(bounds)))
    if "exists" in given:
        terms.append(Exists(bool(given["exists"]), shown({"exists": given["exists"]})))
    if "not" in given:
        inner = compile_filter(given["not"], text=text)
        terms.append(Not(inner, shown({"not": given["not"]})))
    if len(terms) == 1:
        return terms[0]
    return AllOf(tuple(terms), shown(dict(given)))


def leaves(spec: Filter) -> Sequence[Filter]:
    """The comparators a filter is made of (through any-of, all-of and not)."""
    match spec:
        case AnyOf(options=inner) | AllOf(terms=inner):
            return [leaf for each in inner for leaf in leaves(each)]
        case Not(inner=inner):
            return leaves(inner)
        case _:
            return [spec]


def contradictions(spec: Filter) -> list[str]:
    """Why parts of a filter can never hold: an empty range, a field required absent and also
    compared, text comparators beside a range on one JSON value. A list (any of) is named when
    none of its options can hold."""
    match spec:
        case Range(bounds=bounds) if _empty(bounds):
            return [f"the range {spec.text} holds no number"]
        case AnyOf(options=options):
            found = [contradictions(option) for option in options]
            return [reason for reasons in found for reason in reasons] if all(found) else []
        case AllOf(terms=terms):
            kinds = {type(term) for term in terms}
            reasons = [reason for term in terms for reason in contradictions(term)]
            if any(isinstance(term, Exists) and not term.present for term in terms) and kinds - {Exists, Not}:
                reasons.append(f"{spec.text} requires the field absent and compares its value")
            ranges = [term for term in terms if isinstance(term, Range)]
            if kinds & {Prefix, Suffix} and ranges and not ranges[0].from_text:
                reasons.append(f"{spec.text} asks one JSON value to be text and a number")
            return reasons
        case _:
            return []


def _empty(bounds: tuple[tuple[Callable[[Any, Any], bool], int | float], ...]) -> bool:
    lows = [
        (bound, compare is operator.gt) for compare, bound in bounds if compare in (operator.gt, operator.ge)
    ]
    highs = [
        (bound, compare is operator.lt) for compare, bound in bounds if compare in (operator.lt, operator.le)
    ]
    return any(
        low > high or (low == high and (strict_low or strict_high))
        for low, strict_low in lows
        for high, strict_high in highs
    )
