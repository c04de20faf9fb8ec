"""Filters on the reporting questions: which events count, by the value of one dimension.

A filter names a dimension (a path, an event type, a source, a prop...: what `/stats/breakdown`
breaks down by), an operator (is, is not, contains) and one or more values, any of which
matches. Filters hold together (and). In a query string they read as Plausible's Stats API v1
wrote them, with our dimension names or Plausible's:
`filters=source==Google|DuckDuckGo;path!=/admin;prop:plan~pro` (`event:page!=/admin` alike).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.rollups.dimensions import DIMENSIONS, PROP_PREFIX, event_value, is_dimension

IS, IS_NOT, CONTAINS = "is", "is_not", "contains"
OPERATORS = (IS, IS_NOT, CONTAINS)
# The query string's spelling of each operator; the first in a filter ends its dimension.
SYMBOLS = {"!=": IS_NOT, "==": IS, "~": CONTAINS}
_OPERATOR = re.compile("|".join(re.escape(symbol) for symbol in SYMBOLS))
FILTERED = ("path", "event_type", *DIMENSIONS)
# Plausible's names of our dimensions (its Stats API's `event:*` and `visit:*`).
PLAUSIBLE_NAMES = {"event:page": "path", "event:name": "event_type"} | {
    f"visit:{name}": name for name in DIMENSIONS
}
PLAUSIBLE_PROP_PREFIX = "event:props:"
MAX_FILTERS = 20
MAX_VALUES = 100


class FilterError(ValueError):
    """A filter that cannot be read or is not supported: its message says which and why."""


def dimension_named(name: str) -> str:
    """Our name of a dimension given by ours or Plausible's; FilterError when it is neither."""
    if name.startswith(PLAUSIBLE_PROP_PREFIX):
        name = PROP_PREFIX + name.removeprefix(PLAUSIBLE_PROP_PREFIX)
    name = PLAUSIBLE_NAMES.get(name, name)
    if name in FILTERED or is_dimension(name):
        return name
    raise FilterError(f"Unknown dimension {name!r}: one of {', '.join(FILTERED)} or {PROP_PREFIX}<key>")


@dataclass(frozen=True)
class Filter:
    dimension: str
    operator: str
    values: tuple[str, ...]
    case_sensitive: bool = True

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.admits(event_value(event, self.dimension))

    def admits(self, value: str | None) -> bool:
        """Whether an event of this value counts: `is` and `contains` need a value, `is_not`
        takes an event without one (a visit with no source is not one from Google)."""
        if value is None:
            return self.operator == IS_NOT
        if not self.case_sensitive:
            value = value.casefold()
        wanted = self.values if self.case_sensitive else tuple(v.casefold() for v in self.values)
        if self.operator == CONTAINS:
            return any(part in value for part in wanted)
        return (value in wanted) == (self.operator == IS)


Filters = tuple[Filter, ...]


def matches_all(filters: Filters, event: Mapping[str, Any]) -> bool:
    return all(one.matches(event) for one in filters)


# A `;` or `|` ends a filter or a value unless escaped with a backslash (as Plausible's v1 does).
_SPLIT = r"(?<!\\)(?:\\\\)*"


def _split(text: str, separator: str) -> list[str]:
    parts, start = [], 0
    for match in re.finditer(_SPLIT + re.escape(separator), text):
        parts.append(text[start : match.end() - 1])
        start = match.end()
    return [*parts, text[start:]]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse(text: str) -> Filters:
    """The filters of a query string's `filters`; FilterError naming the one at fault."""
    filters = []
    for part in _split(text, ";"):
        if not part:
            continue
        filters.append(_parse_one(part))
    if not filters:
        raise FilterError("No filter given: write dimension==value, dimension!=value or dimension~value")
    if len(filters) > MAX_FILTERS:
        raise FilterError(f"At most {MAX_FILTERS} filters")
    return tuple(filters)


def _parse_one(text: str) -> Filter:
    operator = _OPERATOR.search(text)
    if operator is None:
        raise FilterError(f"{text!r} has no operator: ==, != or ~")
    try:
        dimension = dimension_named(text[: operator.start()])
    except FilterError as error:
        raise FilterError(f"{text!r}: {error}") from None
    values = [_unescape(value) for value in _split(text[operator.end() :], "|")]
    return make(dimension, SYMBOLS[operator.group()], values, text)


def make(dimension: str, operator: str, values: list[str], given: str, case_sensitive: bool = True) -> Filter:
    """A filter of one dimension, its values checked; `given` names it in an error."""
    if not values or any(value == "" for value in values):
        raise FilterError(f"{given!r}: every value must be non-empty")
    if len(values) > MAX_VALUES:
        raise FilterError(f"{given!r}: at most {MAX_VALUES} values")
    return Filter(dimension, operator, tuple(values), case_sensitive)


def escape(value: str) -> str:
    """A value as `filters` in a query string writes it: a `\\`, `;` or `|` escaped."""
    return re.sub(r"([\\;|])", r"\\\1", value)


def linkable(dimension: str) -> bool:
    """Whether `dimension==value` reads back as this dimension (a prop key may hold an operator)."""
    return (dimension in FILTERED or is_dimension(dimension)) and _OPERATOR.search(dimension) is None


def adding(text: str | None, dimension: str, value: str) -> str:
    """The filters `text` writes (if any) and `dimension` is `value`, as a query string writes them."""
    one = f"{dimension}=={escape(value)}"
    return f"{text};{one}" if text else one


def words(filters: Filters) -> str:
    """The filters as a person reads them: `source is Google or Bing; path contains /blog`."""
    operators = {IS: "is", IS_NOT: "is not", CONTAINS: "contains"}
    return "; ".join(
        f"{one.dimension} {operators[one.operator]} {' or '.join(one.values)}" for one in filters
    )
