"""The request of `POST /api/v2/query`, the subset of Plausible's Stats API v2 we answer: read
and checked into a `Query`, or refused with a QueryError that names what is not supported."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from reporting import filters
from reporting.periods import Period
from reporting.schemas import MAX_DAYS, MAX_HOURLY_DAYS, UTC_ZONE

KEYS = ("site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "pagination", "include")
# Plausible's metrics, of which METRICS (reporting/plausible_answers.py) answers some.
PLAUSIBLE_METRICS = (
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "percentage",
    "conversion_rate",
    "group_conversion_rate",
    "time_on_page",
    "total_revenue",
    "average_revenue",
    "scroll_depth",
)
TIME_DIMENSIONS = ("time:hour", "time:day", "time:week", "time:month")
INCLUDES = ("time_labels", "total_rows", "imports")
MAX_LIMIT = 10000


class QueryError(ValueError):
    """What a request asks that we cannot answer, and under which key of it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Query:
    period: Period
    metrics: tuple[str, ...]
    # Plausible's names, as given; `dimension_names` maps them to ours.
    dimensions: tuple[str, ...]
    order_by: tuple[tuple[str, str], ...]
    limit: int
    offset: int
    include: Mapping[str, bool]
    # The filters as the request wrote them, echoed in the answer.
    given_filters: list[Any]

    @property
    def time_dimension(self) -> str | None:
        return next((name for name in self.dimensions if name in TIME_DIMENSIONS), None)


def dimension_named(name: Any) -> str:
    """Our name of a v2 dimension: `time:*` as it is, the others as filters name them."""
    if name in TIME_DIMENSIONS:
        return str(name)
    if not isinstance(name, str):
        raise QueryError("dimensions", f"A dimension is a string, not {name!r}")
    try:
        return filters.dimension_named(name)
    except filters.FilterError:
        raise QueryError("dimensions", f"Dimension not supported: {name}") from None


def read_query(
    body: Any, supported_metrics: Mapping[str, object], today: date, first_day: Callable[[str], date]
) -> Query:
    """The query of a request body; `first_day` gives a site's first day, for `"all"`."""
    if not isinstance(body, dict):
        raise QueryError("body", "The request body must be a JSON object")
    unknown = sorted(set(body) - set(KEYS))
    if unknown:
        raise QueryError(unknown[0], f"Not a key of a query: {', '.join(unknown)}")
    missing = [key for key in ("site_id", "metrics", "date_range") if key not in body]
    if missing:
        raise QueryError(missing[0], f"Missing required keys: {', '.join(missing)}")
    site_id = body["site_id"]
    if not isinstance(site_id, str) or not 1 <= len(site_id) <= 128:
        raise QueryError("site_id", "site_id must be a string of 1 to 128 characters")
    metrics = read_metrics(body["metrics"], supported_metrics)
    dimensions = read_dimensions(body.get("dimensions", []))
    first, last = read_date_range(body["date_range"], today, lambda: first_day(site_id))
    if "time:hour" in dimensions and last - first >= timedelta(days=MAX_HOURLY_DAYS):
        raise QueryError("date_range", f"time:hour spans at most {MAX_HOURLY_DAYS} days")
    chosen = tuple(read_filter(entry) for entry in listed("filters", body.get("filters", [])))
    limit, offset = read_pagination(body.get("pagination", {}))
    return Query(
        Period(site_id, first, last, UTC_ZONE, None, chosen),
        metrics,
        dimensions,
        read_order_by(body.get("order_by", []), metrics, dimensions),
        limit,
        offset,
        read_include(body.get("include", {}), dimensions),
        body.get("filters", []),
    )


def listed(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise QueryError(key, f"{key} must be a list")
    return value


def read_metrics(value: Any, supported: Mapping[str, object]) -> tuple[str, ...]:
    metrics = listed("metrics", value)
    if not metrics:
        raise QueryError("metrics", "Give at least one metric")
    for metric in metrics:
        if not isinstance(metric, str):
            raise QueryError("metrics", f"A metric is a string, not {metric!r}")
        if metric in supported:
            continue
        if metric in PLAUSIBLE_METRICS:
            raise QueryError("metrics", f"Metric not supported: {metric}; supported: {', '.join(supported)}")
        raise QueryError("metrics", f"Unknown metric: {metric!r}")
    if len(set(metrics)) < len(metrics):
        raise QueryError("metrics", "Each metric at most once")
    return tuple(metrics)


def read_dimensions(value: Any) -> tuple[str, ...]:
    dimensions = tuple(listed("dimensions", value))
    for name in dimensions:
        dimension_named(name)
    if len(set(dimensions)) < len(dimensions):
        raise QueryError("dimensions", "Each dimension at most once")
    if sum(name in TIME_DIMENSIONS for name in dimensions) > 1:
        raise QueryError("dimensions", "At most one time dimension")
    return dimensions


# As Plausible's query API reads them today (lib/plausible/stats/query_period.ex): the last
# n days or months end before today's day or month.
PRESETS: dict[str, Callable[[date], tuple[date, date]]] = {
    "day": lambda today: (today, today),
    "7d": lambda today: (today - timedelta(days=7), today - timedelta(days=1)),
    "30d": lambda today: (today - timedelta(days=30), today - timedelta(days=1)),
    "month": lambda today: (today.replace(day=1), month_end(today)),
    "6mo": lambda today: (months_before(today, 6), months_before(today, 0) - timedelta(days=1)),
    "12mo": lambda today: (months_before(today, 12), months_before(today, 0) - timedelta(days=1)),
    "year": lambda today: (today.replace(month=1, day=1), today.replace(month=12, day=31)),
}


def month_end(day: date) -> date:
    return months_before(day, -1) - timedelta(days=1)


def months_before(day: date, months: int) -> date:
    """The first day of the month `months` before `day`'s."""
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def read_date_range(value: Any, today: date, first_day: Callable[[], date]) -> tuple[date, date]:
    """The first and last day: a preset relative to today (UTC), or two ISO dates."""
    if value == "all":
        first, last = min(first_day(), today), today
    elif isinstance(value, str) and value in PRESETS:
        first, last = PRESETS[value](today)
    elif isinstance(value, str):
        raise QueryError(
            "date_range",
            f"date_range not supported: {value!r}; a preset ({', '.join(PRESETS)}, all) or two dates",
        )
    elif isinstance(value, list) and len(value) == 2 and all(isinstance(day, str) for day in value):
        first, last = (read_day(day) for day in value)
    else:
        raise QueryError("date_range", "date_range must be a preset or a list of two ISO 8601 dates")
    if last < first:
        raise QueryError("date_range", "The range must not end before it starts")
    if last - first >= timedelta(days=MAX_DAYS):
        raise QueryError("date_range", f"A range spans at most {MAX_DAYS} days")
    if not Period("", first, last, UTC_ZONE).computable():
        raise QueryError("date_range", "This period reaches past the ends of the calendar")
    return first, last


def read_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise QueryError("date_range", f"Not an ISO 8601 date: {text!r}") from None
    raise QueryError("date_range", f"date_range with times is not supported: give two dates, not {text!r}")


def read_filter(entry: Any) -> filters.Filter:
    """One filter `[operator, dimension, [values], {"case_sensitive": bool}?]`."""
    if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
        raise QueryError("filters", f"Not a filter: {entry!r}")
    operator = entry[0]
    if operator not in filters.OPERATORS:
        raise QueryError(
            "filters", f"Filter operator not supported: {operator}; supported: {', '.join(filters.OPERATORS)}"
        )
    if len(entry) not in (3, 4) or not isinstance(entry[2], list):
        raise QueryError("filters", f"Not a filter: {entry!r}")
    if not isinstance(entry[1], str):
        raise QueryError("filters", f"Not a dimension: {entry[1]!r}")
    try:
        dimension = filters.dimension_named(entry[1])
    except filters.FilterError:
        raise QueryError("filters", f"Filter dimension not supported: {entry[1]}") from None
    modifiers = entry[3] if len(entry) == 4 else {}
    if not isinstance(modifiers, dict) or set(modifiers) - {"case_sensitive"}:
        raise QueryError("filters", f"Filter modifiers not supported: {modifiers!r}")
    case_sensitive = modifiers.get("case_sensitive", True)
    values = entry[2]
    if not isinstance(case_sensitive, bool) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in values
    ):
        raise QueryError("filters", f"Not a filter: {entry!r}")
    try:
        return filters.make(dimension, operator, [str(v) for v in values], str(entry), case_sensitive)
    except filters.FilterError as error:
        raise QueryError("filters", str(error)) from None


def read_pagination(value: Any) -> tuple[int, int]:
    if not isinstance(value, dict) or set(value) - {"limit", "offset"}:
        raise QueryError("pagination", "pagination is an object of limit and offset")
    limit, offset = value.get("limit", MAX_LIMIT), value.get("offset", 0)
    if not is_integer(limit) or not 1 <= limit <= MAX_LIMIT:
        raise QueryError("pagination", f"limit must be an integer from 1 to {MAX_LIMIT}")
    if not is_integer(offset) or offset < 0:
        raise QueryError("pagination", "offset must be an integer of at least 0")
    return limit, offset


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_order_by(
    value: Any, metrics: tuple[str, ...], dimensions: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    entries = []
    for entry in listed("order_by", value):
        if not isinstance(entry, list) or len(entry) != 2 or entry[1] not in ("asc", "desc"):
            raise QueryError("order_by", f"Not an order: {entry!r}; [metric or dimension, asc or desc]")
        if entry[0] not in metrics and entry[0] not in dimensions:
            raise QueryError(
                "order_by", f"Can only order by a metric or dimension of the query: {entry[0]!r}"
            )
        entries.append((entry[0], entry[1]))
    return tuple(entries)


def read_include(value: Any, dimensions: tuple[str, ...]) -> dict[str, bool]:
    if not isinstance(value, dict):
        raise QueryError("include", "include must be an object")
    for key, flag in value.items():
        if key not in INCLUDES:
            raise QueryError("include", f"include not supported: {key}; supported: {', '.join(INCLUDES)}")
        if not isinstance(flag, bool):
            raise QueryError("include", f"include.{key} must be true or false")
    if value.get("time_labels") and not any(name in TIME_DIMENSIONS for name in dimensions):
        raise QueryError("include", "time_labels needs a time dimension")
    return dict(value)
