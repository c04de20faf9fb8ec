"""The days a question is about, in the site owner's time zone, as UTC instants."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from reporting.filters import Filters

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Interval:
    """A half-open span of time [start, end) in UTC, labelled as the asker sees it."""

    label: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Period:
    """A site's days `first_day`..`last_day` (inclusive) in `tz`, optionally one event type,
    and the events that `filters` match."""

    site_id: str
    first_day: date
    last_day: date
    tz: ZoneInfo
    event_type: str | None = None
    filters: Filters = ()

    def day_start(self, day: date) -> datetime:
        """The first instant of a local day, in UTC (a day may have 23 or 25 hours)."""
        return datetime.combine(day, time.min, tzinfo=self.tz).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.day_start(self.first_day)

    @property
    def end(self) -> datetime:
        return self.day_start(self.last_day + timedelta(days=1))

    def computable(self) -> bool:
        """Whether the period's first and last instants exist: a day at the calendar's ends,
        in a zone whose offset pushes it past year 1 or 9999, has none."""
        try:
            return self.start < self.end
        except OverflowError:
            return False

    def includes_today(self) -> bool:
        return self.last_day >= datetime.now(self.tz).date()

    def days(self) -> Iterator[Interval]:
        day = self.first_day
        while day <= self.last_day:
            yield Interval(day.isoformat(), self.day_start(day), self.day_start(day + timedelta(days=1)))
            day += timedelta(days=1)

    def hours(self) -> Iterator[Interval]:
        """Each hour of the period; a repeated local hour (DST ending) shows its offset."""
        moment, end = self.start, self.end
        while moment < end:
            yield Interval(moment.astimezone(self.tz).isoformat(), moment, moment + HOUR)
            moment += HOUR
