"""The values an event is broken down by beyond its path and type: the fields the worker
stored on it (source, campaign, device, browser, OS, country) and each of its `props`
(`prop:<key>`), as strings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

DIMENSIONS = (
    "source",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "device",
    "browser",
    "os",
    "country",
)
PROP_PREFIX = "prop:"
# Where a rollup counts the views of prop keys it did not keep: no prop key is empty, so no
# real key is counted there.
OTHER_PROPS = PROP_PREFIX


def is_dimension(name: str) -> bool:
    """Whether `/stats/breakdown` can break down by `name` with the rollups' dimensions."""
    return name in DIMENSIONS or (name.startswith(PROP_PREFIX) and name != OTHER_PROPS)


def event_values(event: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The event's (dimension, value) pairs: the dimensions it has a value of, and its props
    but those set to null."""
    for name in DIMENSIONS:
        value = event.get(name)
        if value:
            yield name, value
    for key, value in (event.get("props") or {}).items():
        if value is not None:
            yield PROP_PREFIX + key, value_text(value)


def event_value(event: Mapping[str, Any], dimension: str) -> str | None:
    """The event's value of one dimension, if it has one."""
    if dimension.startswith(PROP_PREFIX):
        value = (event.get("props") or {}).get(dimension.removeprefix(PROP_PREFIX))
        return None if value is None else value_text(value)
    return event.get(dimension) or None


def value_text(value: str | float | bool) -> str:
    """A prop's value as a breakdown lists it: a string as it is, a number or boolean as
    JSON writes it (`true`, `3`, `2.5`)."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()
