"""The answers of `POST /api/v2/query`: each row's metrics, from the rollups when they count
what is asked exactly, else from the period's raw events (bounded as filtered questions are).

Steps: cut the period into the time dimension's buckets; ask the rollups (no filters, at
most one other dimension, and for a dimension's values only metrics that need no users);
else group the raw events by bucket and values; order the rows and cut the page.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pymongo.database import Database

from app.rollups.dimensions import event_value
from app.rollups.tally import Tally, TypeTally
from reporting import queries
from reporting.periods import Interval, Period
from reporting.plausible_query import TIME_DIMENSIONS, Query, dimension_named, months_before

PAGE_VIEW = "page_view"
Number = int | float


@dataclass(frozen=True)
class Metric:
    """A metric of a row: of its tally, and, where it needs no users, of its views per event
    type (which is all the rollups keep of a dimension's value)."""

    of_tally: Callable[[Tally], Number]
    of_views: Callable[[Mapping[str, int]], Number] | None = None


METRICS: dict[str, Metric] = {
    "visitors": Metric(lambda tally: tally.unique_users),
    "pageviews": Metric(
        lambda tally: tally.selected(PAGE_VIEW).events, lambda views: views.get(PAGE_VIEW, 0)
    ),
    "events": Metric(lambda tally: tally.events, lambda views: sum(views.values())),
}

Row = tuple[tuple[str, ...], tuple[Number, ...]]


@dataclass(frozen=True)
class Answer:
    rows: list[Row]
    total_rows: int
    time_labels: list[str]
    source: str


def answer(db: Database[Any], query: Query) -> Answer:
    buckets = time_buckets(query.period, query.time_dimension)
    found = from_rollups(db, query, buckets)
    source = queries.ROLLUPS
    if found is None:
        found, source = from_events(db, query, buckets), queries.EVENTS
    rows = ordered(query, found)
    page = rows[query.offset : query.offset + query.limit]
    labels = [bucket.label for bucket in buckets] if query.time_dimension else []
    return Answer(page, len(rows), labels, source)


def others(query: Query) -> list[str]:
    """The query's dimensions but time, in our names."""
    return [dimension_named(name) for name in query.dimensions if name not in TIME_DIMENSIONS]


def key(query: Query, label: str, values: tuple[str, ...]) -> tuple[str, ...]:
    """A row's dimensions in the query's order: the bucket's label for the time dimension."""
    rest = iter(values)
    return tuple(label if name in TIME_DIMENSIONS else next(rest) for name in query.dimensions)


def of_tally(query: Query, tally: Tally) -> tuple[Number, ...]:
    return tuple(METRICS[name].of_tally(tally) for name in query.metrics)


def from_rollups(db: Database[Any], query: Query, buckets: list[Interval]) -> list[Row] | None:
    """The rows, if the rollups count them exactly: no filters, at most one dimension besides
    time, nothing beyond the rollups' caps."""
    chosen = others(query)
    if query.period.filters or len(chosen) > 1:
        return None
    if chosen and chosen != ["event_type"] and any(METRICS[m].of_views is None for m in query.metrics):
        return None
    tallies = queries.rollup_tallies(db, query.period.site_id, buckets)
    if tallies is None:
        return None
    rows: list[Row] = []
    for bucket in buckets:
        tally = tallies.tally(bucket.start, bucket.end)
        # Events of types not kept may be page views, or of a type asked for.
        if tally.other_types.events:
            return None
        if not chosen:
            if tally.events or not query.dimensions:
                rows.append((key(query, bucket.label, ()), of_tally(query, tally)))
            continue
        if chosen[0] != "event_type" and beyond_caps(tally, chosen[0]):
            return None
        rows.extend(
            (key(query, bucket.label, (value,)), numbers)
            for value, numbers in values_of(query, tally, chosen[0])
        )
    return rows


def beyond_caps(tally: Tally, dimension: str) -> bool:
    return bool(tally.other_paths if dimension == "path" else tally.other_of(dimension))


def values_of(query: Query, tally: Tally, dimension: str) -> Iterator[tuple[str, tuple[Number, ...]]]:
    """Each value's metrics: per event type from its tally, per other dimension from its views."""
    if dimension == "event_type":
        for event_type, part in tally.types.items():
            yield event_type, of_tally(query, Tally({event_type: part}))
        return
    views: dict[str, Counter[str]] = {}
    for event_type, part in tally.types.items():
        for value, count in counted(part, dimension).items():
            views.setdefault(value, Counter())[event_type] += count
    for value, by_type in views.items():
        yield value, tuple(of_views(name, by_type) for name in query.metrics)


def counted(part: TypeTally, dimension: str) -> Counter[str]:
    return part.paths if dimension == "path" else part.dimension(dimension)


def of_views(metric: str, views: Mapping[str, int]) -> Number:
    compute = METRICS[metric].of_views
    assert compute is not None  # from_rollups asks only for metrics that have it
    return compute(views)


def from_events(db: Database[Any], query: Query, buckets: list[Interval]) -> list[Row]:
    """The rows as the period's raw events (those the filters match) count them: events
    without a value of a dimension asked for are in no row."""
    chosen = others(query)
    starts = [bucket.start for bucket in buckets]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for event in queries.filtered_tallies(db, query.period).events:
        values = tuple(event_value(event, name) for name in chosen)
        if None in values:
            continue
        label = buckets[bisect_right(starts, event["timestamp"]) - 1].label
        groups.setdefault(key(query, label, values), []).append(event)  # type: ignore[arg-type]
    if not query.dimensions:
        return [((), of_tally(query, Tally.of(groups.get((), []))))]
    return [(row, of_tally(query, Tally.of(events))) for row, events in groups.items()]


def ordered(query: Query, rows: list[Row]) -> list[Row]:
    """By `order_by`, then by time ascending when there is a time dimension, else by the first
    metric descending; ties by the dimensions' values."""
    rows = sorted(rows, key=lambda row: row[0])
    if query.time_dimension:
        at = query.dimensions.index(query.time_dimension)
        rows.sort(key=lambda row: row[0][at])
    else:
        rows.sort(key=lambda row: row[1][0], reverse=True)
    for name, direction in reversed(query.order_by):
        if name in query.metrics:
            index = query.metrics.index(name)
            rows.sort(key=lambda row: row[1][index], reverse=direction == "desc")
        else:
            index = query.dimensions.index(name)
            rows.sort(key=lambda row: row[0][index], reverse=direction == "desc")
    return rows


NEXT_START: dict[str, Callable[[date], date]] = {
    "time:day": lambda day: day + timedelta(days=1),
    "time:week": lambda day: day + timedelta(days=7 - day.weekday()),
    "time:month": lambda day: months_before(day, -1),
}


def time_buckets(period: Period, dimension: str | None) -> list[Interval]:
    """The period cut by the time dimension, each bucket labelled as Plausible labels it (a
    week or month by its first day within the period); the whole period without one."""
    if dimension is None:
        return [Interval("", period.start, period.end)]
    if dimension == "time:hour":
        return [Interval(f"{hour.start:%Y-%m-%d %H:00:00}", hour.start, hour.end) for hour in period.hours()]
    buckets, day = [], period.first_day
    while day <= period.last_day:
        following = NEXT_START[dimension](day)
        buckets.append(Interval(day.isoformat(), period.day_start(day), period.day_start(following)))
        day = following
    buckets[-1] = Interval(buckets[-1].label, buckets[-1].start, period.end)
    return buckets


def body(query: Query, found: Answer) -> dict[str, Any]:
    """The answer as Plausible shapes it: `results`, `meta` and the `query` as understood."""
    meta: dict[str, Any] = {"from": found.source}
    if query.include.get("total_rows"):
        meta["total_rows"] = found.total_rows
    if query.include.get("time_labels"):
        meta["time_labels"] = found.time_labels
    return {
        "results": [{"metrics": list(metrics), "dimensions": list(row)} for row, metrics in found.rows],
        "meta": meta,
        "query": {
            "site_id": query.period.site_id,
            "metrics": list(query.metrics),
            "date_range": [
                query.period.start.isoformat(),
                (query.period.end - timedelta(seconds=1)).isoformat(),
            ],
            "dimensions": list(query.dimensions),
            "filters": query.given_filters,
            "order_by": [list(entry) for entry in query.order_by],
            "include": dict(query.include),
            "pagination": {"limit": query.limit, "offset": query.offset},
        },
    }
