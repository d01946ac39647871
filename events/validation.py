"""Validation of routes.yaml's parts that reports every problem with its place, and checks on.

`validate` checks one part against its pydantic model; with `repaired`, a part whose schema check
fails is checked on with each failing field holding PLACEHOLDER (an unknown field dropped), so
that one bad field does not hide the problems of the rest. `told` then leaves out what the later
checks said about the placeholders themselves.
"""

from __future__ import annotations

import copy
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
    problems.extend(f"{path}: {error['msg']}" for path, error in zip(paths, errors, strict=True))
    fixed = _repaired(raw, errors) if repaired is not None else None
    if fixed is None or repaired is None:
        return None
    try:
        validated = model.model_validate(fixed)
    except ValidationError:
        return None
    repaired.extend((path, len(problems)) for path in paths)
    return validated


def error_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error's place as the loader writes paths: `.key` and `[position]`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in _place(loc))


def _place(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A pydantic error's place in the document: without the tags of a filter's forms."""
    return tuple(part for part in loc if part not in FILTER_TAGS)


def _repaired(raw: object, errors: list[Any]) -> object | None:
    """A copy of `raw` with each failing value replaced by PLACEHOLDER (an unknown field
    dropped); None where that cannot be done (a required field is missing, the place is not a
    plain key or position)."""
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
        if error["type"] == "extra_forbidden" and isinstance(container, dict):
            del container[last]
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
