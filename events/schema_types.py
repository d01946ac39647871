"""The value types routes.yaml's models are built from: strict numbers, durations and filters.

Each is a pydantic annotated type that validates strictly (YAML 1.1's surprises named in the
message) and describes itself in the JSON Schema (`events.schema.json_schema`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    model_validator,
)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ScalarValue = StrictBool | StrictInt | StrictFloat | str


def _is_number(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value):
        raise ValueError(  # YAML 1.1 reads a float only with a point and a signed exponent
            f"expected a number (YAML reads {value} as text: write it as 1000000 or 1.0e+6)"
        )
    raise ValueError("expected a number")


Number = Annotated[int | float, PlainValidator(_is_number, json_schema_input_type=StrictInt | StrictFloat)]


class Comparison(Model):
    """A filter is a value (equal to it: `survey.closed`, `3`, `true`; JSON equality, so true
    is not 1), a list (any of its filters holds: `[eu, us]`), or a mapping of comparators that
    must all hold: `{prefix: "acme-"}`, `{suffix: ".csv"}`, `{gte: 0.5, lt: 1}`,
    `{exists: true}`, `{not: [draft, deleted]}`. An absent field meets only `exists: false`
    and `not`. Ranges compare JSON numbers; an attribute (always text) is read as a decimal
    number. Matching is linear in the value and the filter. `routes check` refuses a filter that
    can never hold (an empty range, a number where text is compared)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    prefix: str | None = Field(None, description="text that starts with this")
    suffix: str | None = Field(None, description="text that ends with this")
    gt: Number | None = Field(None, description="a number greater than this")
    gte: Number | None = Field(None, description="a number at least this")
    lt: Number | None = Field(None, description="a number less than this")
    lte: Number | None = Field(None, description="a number at most this")
    exists: StrictBool | None = Field(None, description="true: the field is there; false: it is absent")
    not_: FilterSpec | None = Field(
        None, alias="not", description="the filter inside does not hold (an absent field does not hold it)"
    )

    @model_validator(mode="after")
    def _given(self) -> Comparison:
        if all(value is None for value in self.__dict__.values()):
            raise ValueError("give at least one of prefix, suffix, gt, gte, lt, lte, exists, not")
        return self


def _is_value(value: object) -> object:
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError("expected a value (text, a number, true or false), a list, or comparators")


def _filter_kind(value: object) -> str:
    if isinstance(value, dict | Comparison):
        return "filter:comparators"
    return "filter:any-of" if isinstance(value, list | tuple) else "filter:value"


# Which form of a filter was read: pydantic puts the tag in an error's path (events.validation drops it)
FILTER_TAGS = frozenset({"filter:value", "filter:comparators", "filter:any-of"})
FilterScalar = Annotated[
    bool | int | float | str,
    PlainValidator(_is_value, json_schema_input_type=StrictBool | StrictInt | StrictFloat | str),
]
FilterValue = Annotated[
    Annotated[FilterScalar, Tag("filter:value")] | Annotated[Comparison, Tag("filter:comparators")],
    Discriminator(_filter_kind),
]
FilterSpec = Annotated[  # a value, comparators, or a list: any of its filters
    Annotated[FilterScalar, Tag("filter:value")]
    | Annotated[Comparison, Tag("filter:comparators")]
    | Annotated[tuple[FilterValue, ...], Tag("filter:any-of")],
    Discriminator(_filter_kind),
]
Comparison.model_rebuild()


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(value: object) -> object:
    """A duration: a number of seconds, or a string like `90s`, `10m`, `2h`, `1d`."""
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)):
        return float(match[1]) * UNITS[match[2]]
    return value


def _duration(value: object) -> object:
    """`seconds`, or why text is not a duration."""
    found = seconds(value)
    if isinstance(found, str):
        raise ValueError(f"expected a duration, seconds as a number or 90s, 10m, 2h, 1d (got {found[:40]!r})")
    return found


Duration = Annotated[
    float,
    BeforeValidator(
        _duration, json_schema_input_type=float | Annotated[str, Field(pattern=r"^\d+(\.\d+)?[smhd]$")]
    ),
    Field(gt=0),
]
