"""`compare`: the period a question is compared with, and the change of a figure against it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from reporting.periods import Period

PREVIOUS_PERIOD, YEAR_OVER_YEAR = "previous_period", "year_over_year"
COMPARISONS = (PREVIOUS_PERIOD, YEAR_OVER_YEAR)


def previous_period(period: Period) -> Period:
    """The as many days just before `period`."""
    days = period.last_day - period.first_day + timedelta(days=1)
    return replace(period, first_day=period.first_day - days, last_day=period.first_day - timedelta(days=1))


def a_year_earlier(day: date) -> date:
    """The same date a year earlier; 29 February, which that year lacks, is 28 February."""
    if (day.month, day.day) == (2, 29):
        day = day - timedelta(days=1)
    return day.replace(year=day.year - 1)


def year_over_year(period: Period) -> Period:
    """The same dates a year earlier."""
    return replace(
        period, first_day=a_year_earlier(period.first_day), last_day=a_year_earlier(period.last_day)
    )


def other_period(period: Period, compare: str) -> Period:
    """The period `compare` names; OverflowError or ValueError when it lies before year 1."""
    return previous_period(period) if compare == PREVIOUS_PERIOD else year_over_year(period)


def change(value: float, previous: float) -> float | None:
    """The change from `previous` to `value` in percent, to one decimal; None when `previous`
    was none, as no percentage grows from nothing."""
    return None if not previous else round((value - previous) * 100 / previous, 1)


def changes(
    current: Mapping[str, Any], previous: Mapping[str, Any], names: Iterable[str]
) -> dict[str, float | None]:
    """The change of each named figure from `previous` to `current`."""
    return {name: change(current[name], previous[name]) for name in names}


def aligned_changes(
    current: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]], names: Iterable[str]
) -> list[dict[str, float | None] | None]:
    """The changes of each point of a series against the other period's point at its position;
    None where the other period has none (it may have fewer days, or hours across a DST change)."""
    wanted = tuple(names)
    return [
        changes(now, previous[position], wanted) if position < len(previous) else None
        for position, now in enumerate(current)
    ]
