"""Which rollups exist and which of them answer a question: a site's UTC quarter hours,
hours, days and weeks (from Monday), and the fewest of them that cover an interval exactly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)


def floor_to(moment: datetime, level: str) -> datetime:
    """The start of the UTC quarter hour, hour, day or week (from Monday) holding `moment`."""
    moment = moment.astimezone(UTC)
    if level == "quarter":
        return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if level == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if level == "day" else day - moment.weekday() * DAY


STAMPS = {"quarter": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "week": "%Y-%m-%d"}


def rollup_id(site_id: str, level: str, start: datetime) -> str:
    """The `_id` of a site's rollup of one UTC quarter hour, hour, day or week, e.g.
    `site-1|quarter|2025-11-15T10:45`, `site-1|hour|2025-11-15T10`, `site-1|day|2025-11-15`,
    `site-1|week|2025-11-10` (weeks start on Monday)."""
    return f"{site_id}|{level}|{start.strftime(STAMPS[level])}"


@dataclass(frozen=True)
class Bucket:
    """One stored rollup: a site's UTC quarter hour, hour, day or week."""

    site_id: str
    level: str
    start: datetime

    @property
    def id(self) -> str:
        return rollup_id(self.site_id, self.level, self.start)


# Longest first: `cover` takes the longest rollup that fits.
LEVELS = {"week": WEEK, "day": DAY, "hour": HOUR, "quarter": QUARTER}


def containing_buckets(site_id: str, moment: datetime, finest: str = "quarter") -> list[Bucket]:
    """The rollups a delta of the quarter hour (or, with `finest="hour"`, of the hour) starting
    at `moment` adds into: its week, day, hour and quarter hour, down to `finest`."""
    levels = list(LEVELS)[: list(LEVELS).index(finest) + 1]
    return [Bucket(site_id, level, floor_to(moment, level)) for level in levels]


def cover(site_id: str, start: datetime, end: datetime) -> list[Bucket] | None:
    """The fewest rollups that exactly cover the UTC interval [start, end): whole weeks where
    possible, then whole days, then hours, quarter hours at the edges. None when the interval
    does not start and end on a UTC quarter hour: every offset in use since 1980 is a multiple
    of 15 minutes (+05:30, +05:45, -03:30), but a few before were not (Kiritimati kept -10:40
    until 1979, Monrovia -00:44:30 until 1972, and local mean times before), and only raw
    events answer those.

    A rollup's size grows with the site's users, not with its span (a day of a busy site
    holds nearly as many users' bits as its week), so fewer rollups means fewer bytes: a
    30-day question reads 6 to 15 rollups instead of 30.
    """
    if floor_to(start, "quarter") != start or floor_to(end, "quarter") != end:
        return None
    return list(_cover(site_id, start.astimezone(UTC), end.astimezone(UTC)))


def _cover(site_id: str, start: datetime, end: datetime) -> Iterator[Bucket]:
    moment = start
    while moment < end:
        # The time left, not the rollup's end, is compared: the last week of year 9999 ends
        # past what a datetime holds, and so never fits before an `end` that one does.
        level = next(
            level
            for level, length in LEVELS.items()
            if floor_to(moment, level) == moment and end - moment >= length
        )
        yield Bucket(site_id, level, moment)
        moment += LEVELS[level]
