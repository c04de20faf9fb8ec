"""Every time zone in use is answered from the rollups, exactly: half-hour and 45-minute
offsets, historical offsets and DST transitions start and end on a UTC quarter hour. The raw
events are only the cross-check (the pipeline), never read to answer."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest

from app.rollups.buckets import QUARTER, cover
from reporting import queries
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline, timeseries
from tools.factories import make_event

ZONES_AND_DAYS = [
    ("Asia/Kolkata", date(2025, 11, 15)),  # +05:30
    ("Asia/Kathmandu", date(2025, 11, 15)),  # +05:45
    ("America/St_Johns", date(2025, 11, 2)),  # -02:30 to -03:30: DST ends
    ("Australia/Adelaide", date(2025, 10, 5)),  # +09:30 to +10:30: DST starts
    ("Asia/Tehran", date(2020, 3, 21)),  # +03:30 to +04:30, DST as Iran kept it until 2022
    ("Asia/Tehran", date(2020, 9, 21)),  # +04:30 to +03:30
    ("Europe/Berlin", date(2025, 10, 26)),  # a 25-hour day
]


def events_around(day: date, site_id: str) -> list[dict]:
    """An event every 7 minutes from the day before to the day after (every minute of the
    hour is met), users and paths repeating across quarters."""
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return [
        make_event(
            site_id=site_id,
            timestamp=(start + timedelta(minutes=7 * n)).isoformat(),
            user_id=f"user-{n % 37}",
            path=f"/p{n % 11}",
        )
        for n in range(3 * 24 * 60 // 7)
    ]


@pytest.fixture
def raw_reads(monkeypatch):
    """How often the raw events were read to answer."""
    reads = []
    read = queries.event_store.events_between

    def counted(*args, **kwargs):
        reads.append(args[1:])
        return read(*args, **kwargs)

    monkeypatch.setattr(queries.event_store, "events_between", counted)
    return reads


@pytest.mark.parametrize(("zone", "day"), ZONES_AND_DAYS)
def test_a_day_in_any_zone_is_answered_from_rollups_exactly(db, store, raw_reads, zone, day):
    site_id = f"site-{zone.replace('/', '-')}"
    store(events_around(day, site_id))
    period = Period(site_id, day, day, ZoneInfo(zone))
    answer = summary(db, period, 100)
    series = timeseries(db, period, "hour")
    assert raw_reads == []
    assert answer == summary_from_pipeline(db, period, 100)
    assert answer.total_views > 0
    raw = queries.RawTallies(db, period)
    hours = list(period.hours())
    assert len(series.points) == len(hours)
    for point, hour in zip(series.points, hours, strict=True):
        expected = raw.tally(hour.start, hour.end)
        assert (point.start, point.views, point.unique_users) == (
            hour.label,
            expected.events,
            expected.unique_users,
        )


def test_an_offset_off_the_quarter_hours_is_answered_from_raw_events(db, store, raw_reads):
    """Monrovia kept -00:44:30 until 1972: no rollup starts with its days."""
    day = date(1960, 5, 1)
    store(events_around(day, "site-monrovia"))
    period = Period("site-monrovia", day, day, ZoneInfo("Africa/Monrovia"))
    assert summary(db, period, 100) == summary_from_pipeline(db, period, 100)
    assert len(raw_reads) == 1


def offset(zone: str, moment: datetime) -> timedelta:
    utc_offset = moment.astimezone(ZoneInfo(zone)).utcoffset()
    assert utc_offset is not None
    return utc_offset


def test_every_zone_s_offset_since_1980_is_whole_quarter_hours():
    """So each zone's days start and end on a UTC quarter hour, and rollups answer them (the
    tests above): every IANA zone, its offset on the first of each month from 1980 to 2030.
    The last exceptions: Pacific/Kiritimati kept -10:40 until 1979, Africa/Monrovia
    -00:44:30 until 1972."""
    odd = {
        (name, year, month)
        for name in available_timezones()
        for year in range(1980, 2031)
        for month in range(1, 13)
        if offset(name, datetime(year, month, 1, tzinfo=UTC)) % QUARTER
    }
    assert odd == set()
    kiritimati = Period("s", date(1979, 1, 1), date(1979, 1, 1), ZoneInfo("Pacific/Kiritimati"))
    assert cover("s", kiritimati.start, kiritimati.end) is None
