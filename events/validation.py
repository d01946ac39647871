"""Validation of routes.yaml's parts that reports every problem with its place, and checks on.

`validate` checks one part against its pydantic model; with `repaired`, a part whose schema check
fails is checked on with each failing field holding PLACEHOLDER (an unknown field dropped), so
that one bad field does not hide the problems of the rest. `told` then leaves out what the later
checks said about the placeholders themselves.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterable
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from events.schema_types import FILTER_TAGS

_M = TypeVar("_M", bound=BaseModel)

PLACEHOLDER = "placeholder"  # what a field that failed its schema check holds while the rest is checked


def validate(
    model: type[_M],
    raw: object,
    where: str,
    problems: list[str],
    repaired: list[tuple[str, int]] | None = None,
) -> _M | None:
    """`raw` validated, or None with its problems added. With `repaired`, a failing value is
    replaced (`routes.check_routes`) and the model so repaired is returned; each repaired path is
    added to `repaired`."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
    paths = [f"{where}{error_path(error['loc'])}".lstrip(".") for error in errors]
    problems.extend(f"{path}: {said(error)}" for path, error in zip(paths, errors, strict=True))
    if repaired is None:
        return None
    for dropping in (True, False):  # a failing optional field left out (its default), else PLACEHOLDER
        fixed = _repaired(raw, errors, dropping)
        if fixed is None:
            continue
        try:
            validated = model.model_validate(fixed)
        except ValidationError:
            continue
        repaired.extend((path, len(problems)) for path in paths)
        return validated
    return None


SAID = {  # pydantic's error types, in routes.yaml's words (`ctx` fills the braces)
    "missing": "is required",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": "must match {pattern}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "literal_error": "must be one of {expected}",
}


def said(error: Any) -> str:
    """A schema error in routes.yaml's terms: an unknown field with the closest known one; a
    bound, a length or a form as a rule on the value given."""
    place = _place(error["loc"])
    if error["type"] == "extra_forbidden" and place and isinstance(place[-1], str):
        return f"unknown field {place[-1]!r}{closest(place[-1], vocabulary())}"
    if error["type"] == "value_error":  # our own validators' words
        return str(error["msg"]).removeprefix("Value error, ")
    template = SAID.get(error["type"])
    if template is None:
        return str(error["msg"])
    try:
        rule = template.format(**error.get("ctx", {}))
    except (KeyError, IndexError):
        return str(error["msg"])
    given = error.get("input")
    shown = (
        f" (got {given!r:.60})" if isinstance(given, str | int | float) and error["type"] != "missing" else ""
    )
    return f"{rule}{shown}"


def closest(given: str, known: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the known name nearest to `given`, if one is near; else ""."""
    found = difflib.get_close_matches(given, list(known), n=1, cutoff=0.7)  # 0.6 took extra for track
    return f"; did you mean {found[0]!r}?" if found else ""


@functools.cache
def vocabulary() -> frozenset[str]:
    """Every field name routes.yaml has (its models' fields, by the names the file uses)."""
    from events import schema, schema_limits, schema_types

    found = [*vars(schema).values(), *vars(schema_limits).values(), *vars(schema_types).values()]
    models = [model for model in found if isinstance(model, type) and issubclass(model, BaseModel)]
    return frozenset(field.alias or name for model in models for name, field in model.model_fields.items())


def error_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error's place as the loader writes paths: `.key` and `[position]`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in _place(loc))


def _place(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A pydantic error's place in the document: without the tags of a filter's forms."""
    return tuple(part for part in loc if part not in FILTER_TAGS)


def _repaired(raw: object, errors: list[Any], dropping: bool = False) -> object | None:
    """A copy of `raw` with each failing value replaced by PLACEHOLDER, or left out (`dropping`;
    an unknown field is always left out); None where that cannot be done (a required field is
    missing, the place is not a plain key or position)."""
    fixed: Any = copy.deepcopy(raw)
    for error in errors:
        place: tuple[Any, ...] = _place(error["loc"]) or (None,)
        *parents, last = place
        if error["type"] == "missing" or last is None:
            return None
        container: Any = fixed
        for part in parents:
            try:
                container = container[part]
            except (KeyError, IndexError, TypeError):
                return None
        if not isinstance(container, dict | list) or (isinstance(container, dict) and last not in container):
            return None
        if (dropping or error["type"] == "extra_forbidden") and isinstance(container, dict):
            container.pop(last, None)
        else:
            try:
                container[last] = PLACEHOLDER
            except (IndexError, TypeError):
                return None
    return cast(object, fixed)


def told(problems: list[str], repaired: list[tuple[str, int]]) -> list[str]:
    """The problems, without those found later under a field that held PLACEHOLDER."""

    def about_placeholder(index: int, problem: str) -> bool:
        return any(
            index >= since and (problem.startswith((f"{path}: ", f"{path}.", f"{path}[")))
            for path, since in repaired
        )

    return [problem for index, problem in enumerate(problems) if not about_placeholder(index, problem)]
