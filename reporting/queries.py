"""The statistics questions. Answers come from the rollups (`RollupTallies`), or from raw
events (`RawTallies`) when a time zone's offset does not fall on a UTC quarter hour (a few
offsets before 1980) or when filters choose events (a rollup keeps each dimension's counts
apart, so it cannot tell which events of one value had another); `/stats/aggregated` asks
MongoDB to count the raw events instead, as a cross-check of both. Breakdowns by a visit's
entry or exit page read the visits (`visits` collection), and their cross-check assigns the
period's raw events their visits afresh.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from operator import itemgetter
from typing import Any, Protocol, TypeVar

from pymongo.database import Database

from app.rollups import migrations as rollup_migrations
from app.rollups import user_ids
from app.rollups.buckets import Bucket, cover
from app.rollups.dimensions import event_value
from app.rollups.tally import Tally
from app.sessions.assign import visits_of
from app.settings import current_settings
from app.store import events as event_store
from app.store import rollups as rollup_store
from app.store import visits as visit_store
from reporting.filters import IS, Filter, matches_all
from reporting.periods import Interval, Period

ROLLUPS, EVENTS = "rollups", "events"


class Tallies(Protocol):
    # Where the tallies come from: ROLLUPS or EVENTS.
    source: str

    def tally(self, start: datetime, end: datetime) -> Tally: ...


class TooManyEventsError(Exception):
    """A filtered question's period holds more events than REPORTING_FILTER_MAX_EVENTS."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The period holds more than {limit} events, more than a filtered question reads "
            "(REPORTING_FILTER_MAX_EVENTS): ask about a shorter period"
        )


class RollupTallies:
    """Tallies of a site's UTC intervals from the fewest rollups covering them,
    all fetched at once when it is made."""

    source = ROLLUPS

    def __init__(self, db: Database[Any], covers: dict[tuple[datetime, datetime], list[Bucket]]) -> None:
        self.covers = covers
        wanted = (bucket.id for buckets in covers.values() for bucket in buckets)
        self.documents = rollup_store.rollup_documents(db, wanted)

    def tally(self, start: datetime, end: datetime) -> Tally:
        total = Tally()
        for bucket in self.covers[start, end]:
            if bucket.id in self.documents:
                total.add_packed(self.documents[bucket.id]["tally"])
        return total


class RawTallies:
    """Tallies of a site's intervals from its raw events, read once for the whole period and
    sorted by time once, so that an interval's events are found by binary search rather than
    by a scan of the period for each interval (an hourly month has 744). Only the events that
    the period's filters match count; with filters, reading more than `max_events` raises
    TooManyEventsError."""

    source = EVENTS

    def __init__(self, db: Database[Any], period: Period, max_events: int | None = None) -> None:
        read: Iterable[dict[str, Any]]
        if max_events is None:
            read = event_store.events_between(db, period.site_id, period.start, period.end)
        else:
            read = at_most(
                event_store.iter_site_events(db, period.site_id, period.start, period.end), max_events
            )
        events = user_ids.numbered_locally(event for event in read if matches_all(period.filters, event))
        self.events = sorted(events, key=itemgetter("timestamp"))
        self.times = [event["timestamp"] for event in self.events]

    def tally(self, start: datetime, end: datetime) -> Tally:
        return Tally.of(self.events[bisect_left(self.times, start) : bisect_left(self.times, end)])


def at_most(events: Iterator[dict[str, Any]], limit: int) -> Iterator[dict[str, Any]]:
    """The events, raising TooManyEventsError once there are more than `limit`."""
    for number, event in enumerate(events, start=1):
        if number > limit:
            raise TooManyEventsError(limit)
        yield event


def tallies_for(db: Database[Any], period: Period, intervals: Iterable[Interval]) -> Tallies:
    """Rollups when they can answer every interval exactly, else raw events; raw events
    always when the period has filters. Quarter-hour rollups answer only once `migrate-store`
    has built them for the weeks an earlier release rolled up."""
    if period.filters:
        return filtered_tallies(db, period)
    return rollup_tallies(db, period.site_id, intervals) or RawTallies(db, period)


def rollup_tallies(db: Database[Any], site_id: str, intervals: Iterable[Interval]) -> RollupTallies | None:
    """The rollups' tallies of the intervals, if the rollups answer each exactly."""
    covers = {(i.start, i.end): cover(site_id, i.start, i.end) for i in intervals}
    exact = {interval: buckets for interval, buckets in covers.items() if buckets is not None}
    quarters = any(bucket.level == "quarter" for buckets in exact.values() for bucket in buckets)
    if len(exact) == len(covers) and (not quarters or rollup_migrations.quarter_rollups_built(db)):
        return RollupTallies(db, exact)
    return None


def filtered_tallies(db: Database[Any], period: Period) -> RawTallies:
    """The tallies of the events the period's filters match, refused at once when the rollups
    count more events in the period than a filtered question may read (and, as the rollups
    may trail the events, also once it has read that many)."""
    limit = current_settings().reporting_filter_max_events
    whole = Interval("", period.start, period.end)
    rollups = rollup_tallies(db, period.site_id, [whole])
    if rollups is not None and rollups.tally(whole.start, whole.end).events > limit:
        raise TooManyEventsError(limit)
    return RawTallies(db, period, limit)


@dataclass(frozen=True)
class PathViews:
    path: str
    views: int


@dataclass(frozen=True)
class Summary:
    total_views: int = 0
    unique_users: int = 0
    top_paths: list[PathViews] = field(default_factory=list)
    # Beyond the rollups' caps (app/rollups/caps.py): views of paths not kept, and, when the
    # question is about one event type, the events of types not kept, which may include it.
    other_paths: int = 0
    other_event_types: int = 0
    # Where it came from: told with filters, never part of a comparison of the figures.
    source: str = field(default=ROLLUPS, compare=False)

    def body(self) -> dict[str, Any]:
        """As `/stats` answers it: the contract's fields, then what lies beyond the caps only
        when there is any, so that an answer under the caps is as it always was."""
        body: dict[str, Any] = {
            "total_views": self.total_views,
            "unique_users": self.unique_users,
            "top_paths": [asdict(row) for row in self.top_paths],
        }
        return (
            body
            | others("other_paths", self.other_paths)
            | others("other_event_types", self.other_event_types)
        )


def others(name: str, views: int) -> dict[str, Any]:
    """An answer's field for views beyond the rollups' caps: none when there are none."""
    return {name: {"views": views}} if views else {}


def ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    """Values by count descending, ties broken by value ascending."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def other_event_types(tally: Tally, event_type: str | None) -> int:
    """Events of types the rollups did not keep, that a question about `event_type` may miss."""
    return 0 if event_type is None else tally.other_types.events


def summarise(tally: Tally, limit: int, event_type: str | None = None, source: str = ROLLUPS) -> Summary:
    """The summary of a tally, or of its `event_type` part."""
    chosen = tally.selected(event_type)
    top = [PathViews(path, views) for path, views in ranked(chosen.paths)[:limit]]
    others = other_event_types(tally, event_type)
    return Summary(chosen.events, chosen.unique_users, top, chosen.other_paths, others, source)


class Exactness(Protocol):
    @property
    def source(self) -> str: ...

    @property
    def other_event_types(self) -> int: ...


Found = TypeVar("Found", bound=Exactness)


def of_one_type(compute: Callable[[Period], Found], period: Period) -> Found:
    """`compute(period)`; but a period filtered on one event type alone is first asked of the
    rollups as `event_type` asks it, and their answer kept when no type lay beyond their caps."""
    only = period.filters[0] if len(period.filters) == 1 else None
    if only is not None and only == Filter("event_type", IS, only.values[:1]):
        event_type = only.values[0]
        if period.event_type in (None, event_type):
            found = compute(replace(period, event_type=event_type, filters=()))
            if found.source == ROLLUPS and not found.other_event_types:
                return found
    return compute(period)


def period_tally(db: Database[Any], period: Period) -> Tally:
    """The tally of the whole period, every event type's (of the events its filters match)."""
    whole = Interval("", period.start, period.end)
    return tallies_for(db, period, [whole]).tally(whole.start, whole.end)


def summary(db: Database[Any], period: Period, limit: int) -> Summary:
    def compute(period: Period) -> Summary:
        whole = Interval("", period.start, period.end)
        tallies = tallies_for(db, period, [whole])
        return summarise(tallies.tally(whole.start, whole.end), limit, period.event_type, tallies.source)

    return of_one_type(compute, period)


@dataclass(frozen=True)
class Point:
    start: str
    views: int
    unique_users: int


@dataclass(frozen=True)
class Series:
    points: list[Point]
    # As in a `Summary`: with one event type asked for, the events of types not kept.
    other_event_types: int = 0
    # Where it came from: told with filters, never part of a comparison of the figures.
    source: str = field(default=ROLLUPS, compare=False)


def timeseries(db: Database[Any], period: Period, interval: str) -> Series:
    """Views and distinct users per hour or day of the period, empty buckets included."""

    def compute(period: Period) -> Series:
        buckets = list(period.hours() if interval == "hour" else period.days())
        tallies = tallies_for(db, period, buckets)
        points = []
        beyond_caps = 0
        for bucket in buckets:
            tally = tallies.tally(bucket.start, bucket.end)
            chosen = tally.selected(period.event_type)
            points.append(Point(bucket.label, chosen.events, chosen.unique_users))
            beyond_caps += other_event_types(tally, period.event_type)
        return Series(points, beyond_caps, tallies.source)

    return of_one_type(compute, period)


@dataclass(frozen=True)
class Row:
    value: str
    views: int


@dataclass(frozen=True)
class Breakdown:
    total: int
    results: list[Row]
    # Views beyond the rollups' caps: of paths, or of event types, not kept; and, as in a
    # `Summary`, when the question is about one event type, the events of types not kept.
    other: int = 0
    other_event_types: int = 0
    # Where it came from: told with filters, never part of a comparison of the figures.
    source: str = field(default=ROLLUPS, compare=False)


@dataclass(frozen=True)
class Counts:
    """A breakdown's views per value, before its page is cut."""

    views: Counter[str]
    other: int
    other_event_types: int
    source: str


# What a breakdown by visits counts: the visits by their first or last page view's path.
VISIT_BREAKDOWNS = ("entry_page", "exit_page")


@dataclass(frozen=True)
class VisitsRow(Row):
    """A page's visits (`views`) and their distinct visitors."""

    unique_users: int


def breakdown(db: Database[Any], period: Period, by: str, limit: int, offset: int) -> Breakdown:
    """Views per path, per event type or per value of a dimension (`app/rollups/dimensions.py`),
    most viewed first, one page of them; or visits per entry or exit page (`VISIT_BREAKDOWNS`,
    never filtered: the schemas refuse filters with them)."""
    if by in VISIT_BREAKDOWNS:
        late = period.end + visit_store.LATE_START
        opened = visit_store.visits_opened_between(db, period.site_id, period.start, late)
        pages = visit_rows((visit for visit in opened if period.start <= visit["start"] < period.end), by)
        return Breakdown(len(pages), list(pages[offset : offset + limit]))
    return paged(of_one_type(lambda period: breakdown_counts(db, period, by), period), limit, offset)


def every_row(db: Database[Any], period: Period, by: str) -> Breakdown:
    """A breakdown's every row, as one page."""
    return breakdown(db, period, by, sys.maxsize, 0)


def break_down(tally: Tally, by: str, limit: int, offset: int, event_type: str | None = None) -> Breakdown:
    """One page of a tally's breakdown, as `breakdown` answers it (not by visits)."""
    views, other = views_by(tally, by, event_type)
    return paged(Counts(views, other, other_event_types(tally, event_type), ROLLUPS), limit, offset)


def paged(found: Counts, limit: int, offset: int) -> Breakdown:
    rows = ranked(found.views)
    page = [Row(value, views) for value, views in rows[offset : offset + limit]]
    return Breakdown(len(rows), page, found.other, found.other_event_types, found.source)


def breakdown_counts(db: Database[Any], period: Period, by: str) -> Counts:
    """The views per value of `by`. Filters only on `by` itself choose among the rollups'
    values, when the rollups kept them all; any other filter needs the raw events."""
    if period.filters and all(one.dimension == by for one in period.filters):
        whole = breakdown_counts(db, replace(period, filters=()), by)
        if whole.source == ROLLUPS and not whole.other and not whole.other_event_types:
            kept = {value: views for value, views in whole.views.items() if admitted(period, value)}
            return Counts(Counter(kept), 0, 0, ROLLUPS)
    whole_period = Interval("", period.start, period.end)
    tallies = tallies_for(db, period, [whole_period])
    tally = tallies.tally(whole_period.start, whole_period.end)
    views, other = views_by(tally, by, period.event_type)
    return Counts(views, other, other_event_types(tally, period.event_type), tallies.source)


def views_by(tally: Tally, by: str, event_type: str | None) -> tuple[Counter[str], int]:
    """A tally's (or its `event_type` part's) views per value of `by`, and the views beyond
    the rollups' caps."""
    chosen = tally.selected(event_type)
    if by == "path":
        counts, other = chosen.paths, chosen.other_paths
    elif by == "event_type":
        counts = Counter({name: t.events for name, t in chosen.types.items()})
        other = tally.other_types.events
    else:
        counts, other = chosen.dimension(by), chosen.other_of(by)
    return counts, other


def admitted(period: Period, value: str) -> bool:
    return all(one.admits(value) for one in period.filters)


def summary_from_pipeline(db: Database[Any], period: Period, limit: int) -> Summary:
    """The summary as one aggregation pipeline over the raw events computes it; with filters,
    as the events they match count in Python."""
    if period.filters:
        whole = Interval("", period.start, period.end)
        raw = RawTallies(db, period, current_settings().reporting_filter_max_events)
        return summarise(raw.tally(whole.start, whole.end), limit, period.event_type, EVENTS)
    rows = event_store.count_by_user_and_path(db, period.site_id, period.start, period.end, period.event_type)
    total = 0
    users: set[str] = set()
    paths: Counter[str] = Counter()
    for row in rows:
        total += row["events"]
        if row["_id"].get("user"):
            users.add(row["_id"]["user"])
        if row["_id"].get("path"):
            paths[row["_id"]["path"]] += row["events"]
    top = [PathViews(path, views) for path, views in ranked(paths)[:limit]]
    return Summary(total, len(users), top, source=EVENTS)


def visit_rows(visits: Iterable[Mapping[str, Any]], by: str) -> list[VisitsRow]:
    """Visits and distinct visitors per entry or exit page (`by`), most visits first; a visit
    without a page view with a path is left out."""
    views: Counter[str] = Counter()
    visitors: defaultdict[str, set[str]] = defaultdict(set)
    for visit in visits:
        page = visit.get(by)
        if page is not None:
            views[page] += 1
            visitors[page].add(visit["visitor"])
    return [VisitsRow(page, count, len(visitors[page])) for page, count in ranked(views)]


def breakdown_from_events(db: Database[Any], period: Period, by: str, limit: int) -> list[Row]:
    """The first `limit` rows of a breakdown, as the raw events count them (by entry or exit
    page: the period's events given their visits afresh)."""
    if by in VISIT_BREAKDOWNS:
        events = event_store.events_between(db, period.site_id, period.start, period.end)
        return list(visit_rows(visits_of(events), by)[:limit])
    found: Iterable[Mapping[str, Any]]
    if period.filters:
        raw = RawTallies(db, period, current_settings().reporting_filter_max_events)
        found = (e for e in raw.events if period.event_type in (None, e["event_type"]))
    else:
        found = event_store.field_values(db, period.site_id, period.start, period.end, period.event_type, by)
    counts = Counter(value for event in found if (value := event_value(event, by)) is not None)
    return [Row(value, views) for value, views in ranked(counts)[:limit]]
