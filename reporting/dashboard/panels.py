"""What the dashboard shows of a site's period, read in process from what the API reads: the
period's rollups fetched once for every figure and table (twice with the period before, for
the changes), the chart's once more, and a few Redis reads for realtime, bots and freshness.
With filters, the figures, chart and tables count the events they match, read from the raw
events as the API reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import Any

import pymongo
import redis
from pymongo.database import Database
from pymongo.errors import PyMongoError

from app.ingestion import bots
from app.queue import snapshot
from app.rollups import compactor, realtime
from app.rollups.dimensions import OTHER_PROPS, PROP_PREFIX
from app.rollups.tally import Tally
from reporting import comparison, queries
from reporting.periods import Interval, Period
from reporting.pipeline import lag_seconds

# Rows of each table: as `/stats/breakdown` answers by default.
ROWS = 10
# How long the visits' tables may read for: a busy site's long period holds more visits than
# the page can read in time, and those two tables then say so rather than fail the page.
VISIT_TABLES_SECONDS = 1.0
# A period of this many days or fewer is charted by the hour, a longer one by the day.
HOURLY_DAYS = 2
PAGE_VIEW = "page_view"

# Each panel's tables: the breakdown (as `/stats/breakdown?by=` names it) and its heading.
PANELS = {
    "Pages": {"path": "Page", "entry_page": "Entry page", "exit_page": "Exit page"},
    "Sources": {"source": "Source", "referrer": "Referrer"},
    "Campaigns": {"utm_campaign": "Campaign", "utm_source": "UTM source", "utm_medium": "UTM medium"},
    "Devices": {"device": "Device", "browser": "Browser", "os": "OS"},
    "Countries": {"country": "Country"},
    "Events": {"event_type": "Event type"},
}


@dataclass(frozen=True)
class Figure:
    """A top figure, in the period and in the one before."""

    name: str
    label: str
    value: int
    previous: int

    @property
    def change(self) -> float | None:
        """The change against the period before, in percent; None when that had none."""
        return comparison.change(self.value, self.previous)


# Why a table has no rows to show: its visits took too long to read, or filters do not apply.
SLOW, UNFILTERED = "slow", "unfiltered"


@dataclass(frozen=True)
class Table:
    by: str
    heading: str
    breakdown: queries.Breakdown | None  # None: not shown, for `missing`'s reason
    missing: str = SLOW

    @property
    def counts(self) -> str:
        """What the table's numbers count: visits by their entry or exit page, else views."""
        return "Visits" if self.by in queries.VISIT_BREAKDOWNS else "Views"


@dataclass(frozen=True)
class Freshness:
    """How far `/stats` trails the events ingestion accepted (as `/health/pipeline` says)."""

    lag_seconds: float
    queued: int  # messages waiting for a worker
    backlog: int  # stored events' deltas not yet added into the rollups


@dataclass(frozen=True)
class Dashboard:
    period: Period
    previous: Period
    figures: list[Figure]
    chart: dict[str, Any]
    panels: dict[str, list[Table]]
    props: list[Table]
    realtime: realtime.Recent
    bots: dict[str, int]
    freshness: Freshness


def figures(tally: Tally, before: Tally) -> list[Figure]:
    """Events and visitors as `/stats` counts them (`total_views`, `unique_users`), and page
    views as it does with `event_type=page_view`."""
    return [
        Figure("events", "Events", tally.events, before.events),
        Figure("visitors", "Visitors", tally.unique_users, before.unique_users),
        Figure(
            "page_views", "Page views", tally.selected(PAGE_VIEW).events, before.selected(PAGE_VIEW).events
        ),
    ]


def chart(db: Database[Any], period: Period) -> dict[str, Any]:
    """The time chart's data as `/stats/timeseries` answers it, with each point's instant (Unix
    seconds) for the chart and the period's time zone to label it in."""
    interval = "hour" if (period.last_day - period.first_day).days < HOURLY_DAYS else "day"
    buckets: list[Interval] = list(period.hours() if interval == "hour" else period.days())
    points = queries.timeseries(db, period, interval).points
    return {
        "interval": interval,
        "tz": period.tz.key,
        "labels": [point.start for point in points],
        "times": [int(bucket.start.timestamp()) for bucket in buckets],
        "events": [point.views for point in points],
        "visitors": [point.unique_users for point in points],
    }


def prop_tables(tally: Tally) -> list[Table]:
    """A table per prop key the rollups kept, in key order."""
    keys = [name for name in tally.dimension_names() if name.startswith(PROP_PREFIX) and name != OTHER_PROPS]
    return [
        Table(key, key.removeprefix(PROP_PREFIX), queries.break_down(tally, key, ROWS, 0)) for key in keys
    ]


def utc_days(period: Period) -> list[str]:
    """The UTC days the period touches: bots are counted by UTC day."""
    day: date = period.start.astimezone(UTC).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(UTC).date()
    days = []
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


def freshness(client: redis.Redis) -> Freshness:
    return Freshness(lag_seconds(client), snapshot.snapshot(client).depth, compactor.backlog(client))


def table(db: Database[Any], period: Period, tally: Tally, by: str, heading: str) -> Table:
    """A breakdown's table: from the period's tally, but for the visits' pages, read from the
    period's visits as `/stats/breakdown` reads them (none with filters, which it refuses)."""
    if by not in queries.VISIT_BREAKDOWNS:
        return Table(by, heading, queries.break_down(tally, by, ROWS, 0))
    if period.filters:
        # A visit carries no event's dimensions: filters choose events, not visits.
        return Table(by, heading, None, UNFILTERED)
    started = time.monotonic()
    try:
        with pymongo.timeout(VISIT_TABLES_SECONDS):
            return Table(by, heading, queries.breakdown(db, period, by, ROWS, 0))
    except PyMongoError as error:
        if not (error.timeout and time.monotonic() - started >= VISIT_TABLES_SECONDS):
            raise  # the server away, or the page's own time limit: not this table's
        return Table(by, heading, None)


def build(db: Database[Any], client: redis.Redis, period: Period, max_ahead_seconds: int) -> Dashboard:
    tally = queries.period_tally(db, period)
    previous = comparison.previous_period(period)
    panels = {
        title: [table(db, period, tally, by, heading) for by, heading in tables.items()]
        for title, tables in PANELS.items()
    }
    return Dashboard(
        period=period,
        previous=previous,
        figures=figures(tally, queries.period_tally(db, previous)),
        chart=chart(db, period),
        panels=panels,
        props=prop_tables(tally),
        realtime=realtime.recent(client, period.site_id, max_ahead_seconds),
        bots=bots.dropped_during(client, period.site_id, utc_days(period)),
        freshness=freshness(client),
    )
