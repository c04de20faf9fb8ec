"""The stats query logic on mongomock: rollups, raw events and the pipeline must agree."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.rollups.migrations import QUARTERS_STEP
from app.store import migrations as migration_store
from reporting import queries
from reporting.periods import Period
from reporting.queries import PathViews, Summary, summary, summary_from_pipeline
from tasks.persist import store_batch
from tools.factories import SEED_EXAMPLE_STATS, make_event, seed_example_events

SUMMARISERS = [summary, summary_from_pipeline]
DAY = date(2025, 11, 15)
UTC_ZONE = ZoneInfo("UTC")


def day_of(site_id="site-abc-123", day=DAY, tz=UTC_ZONE, event_type=None):
    return Period(site_id, day, day, tz, event_type)


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_the_original_readme_example_gives_its_totals(db, store, summarise):
    store(seed_example_events("site-abc-123"))
    result = summarise(db, day_of(), 10)
    assert result.total_views == SEED_EXAMPLE_STATS["total_views"]
    assert result.unique_users == SEED_EXAMPLE_STATS["unique_users"]
    assert [vars(p) for p in result.top_paths] == SEED_EXAMPLE_STATS["top_paths"]


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_an_empty_day_gives_zeros(db, store, summarise):
    assert summarise(db, day_of(), 10) == Summary(0, 0, [])


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_the_day_is_the_utc_day_of_the_timestamp(db, store, summarise):
    store(
        [
            make_event(timestamp="2025-11-15T00:30:00+01:00"),  # 14th 23:30 UTC
            make_event(timestamp="2025-11-15T00:00:00Z"),
            make_event(timestamp="2025-11-15T23:59:59.999Z"),
            make_event(timestamp="2025-11-15T23:30:00-01:00"),  # 16th 00:30 UTC
        ]
    )
    assert summarise(db, day_of(), 10).total_views == 2


@pytest.mark.parametrize("summarise", SUMMARISERS)
@pytest.mark.parametrize(
    ("zone", "views"),
    [("Europe/Berlin", 3), ("America/New_York", 2), ("Asia/Kolkata", 2), ("UTC", 2)],
)
def test_a_time_zone_makes_the_days_the_site_owners_days(db, store, summarise, zone, views):
    store(
        [
            make_event(timestamp="2025-11-14T23:30:00Z"),  # Berlin, Kolkata: the 15th; New York: 14th
            make_event(timestamp="2025-11-15T01:00:00Z"),  # Berlin, Kolkata: the 15th; New York: 14th
            make_event(timestamp="2025-11-15T20:00:00Z"),  # Berlin, New York: the 15th; Kolkata: 16th
            make_event(timestamp="2025-11-16T04:00:00Z"),  # New York: the 15th
        ]
    )
    assert summarise(db, day_of(tz=ZoneInfo(zone)), 10).total_views == views


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_events_without_path_or_user_count_only_as_views(db, store, summarise):
    store([make_event(path=None, user_id=None), make_event(path="", user_id=""), make_event()])
    result = summarise(db, day_of(), 10)
    assert (result.total_views, result.unique_users) == (3, 1)
    assert result.top_paths == [PathViews("/pricing", 1)]


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_top_paths_are_the_most_viewed_with_ties_by_path_up_to_the_limit(db, store, summarise):
    store([make_event(path=f"/p{n:02d}") for n in range(12) for _ in range(1 + n % 3)])
    top = summarise(db, day_of(), 10).top_paths
    assert [p.views for p in top] == [3, 3, 3, 3, 2, 2, 2, 2, 1, 1]
    assert [p.path for p in top[:4]] == ["/p02", "/p05", "/p08", "/p11"]
    assert len(summarise(db, day_of(), 100).top_paths) == 12
    assert summarise(db, day_of(), 1).top_paths == [PathViews("/p02", 3)]


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_other_sites_and_other_event_types_are_not_counted(db, store, summarise):
    store([make_event(site_id="other"), make_event(), make_event(event_type="click", user_id="u2")])
    assert summarise(db, day_of(), 10).total_views == 2
    clicks = summarise(db, day_of(event_type="click"), 10)
    assert (clicks.total_views, clicks.unique_users) == (1, 1)


def test_a_range_counts_distinct_users_once_across_days(db, store):
    store([make_event(timestamp=f"2025-11-{day}T12:00:00Z", user_id="same") for day in (14, 15, 16)])
    period = Period("site-abc-123", date(2025, 11, 14), date(2025, 11, 16), UTC_ZONE)
    assert (summary(db, period, 10).total_views, summary(db, period, 10).unique_users) == (3, 1)


def test_the_timeseries_has_every_bucket_and_repeats_the_hour_dst_repeats(db, store):
    store([make_event(timestamp="2025-10-26T00:30:00Z"), make_event(timestamp="2025-10-26T01:30:00Z")])
    period = Period("site-abc-123", date(2025, 10, 26), date(2025, 10, 26), ZoneInfo("Europe/Berlin"))
    points = queries.timeseries(db, period, "hour").points
    assert len(points) == 25  # the day clocks went back
    assert [(p.start, p.views) for p in points[2:4]] == [
        ("2025-10-26T02:00:00+02:00", 1),
        ("2025-10-26T02:00:00+01:00", 1),
    ]
    assert sum(p.views for p in points) == 2


def test_a_breakdown_pages_through_values_by_views(db, store):
    store([make_event(path=f"/p{n}") for n in range(5) for _ in range(n + 1)])
    first = queries.breakdown(db, day_of(), "path", limit=2, offset=0)
    rest = queries.breakdown(db, day_of(), "path", limit=2, offset=2)
    assert first.total == rest.total == 5
    assert [(r.value, r.views) for r in first.results + rest.results] == [
        ("/p4", 5),
        ("/p3", 4),
        ("/p2", 3),
        ("/p1", 2),
    ]


events_strategy = st.lists(
    st.builds(
        make_event,
        event_type=st.sampled_from(["page_view", "click"]),
        path=st.sampled_from([None, "", "/", "/a", "/b.c", "/$x", "/ü"]),
        user_id=st.sampled_from([None, "", "u1", "u2", "u3"]),
        timestamp=st.datetimes(
            min_value=datetime(2025, 11, 14, 20), max_value=datetime(2025, 11, 16, 4), timezones=st.just(UTC)
        ).map(datetime.isoformat),
    ),
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(events_strategy, max_size=3),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"]),
    event_type=st.sampled_from([None, "click"]),
)
def test_rollups_and_the_pipeline_agree_on_any_events(db, store, batches, zone, event_type):
    site_id = f"site-{len(batches)}-{zone}-{event_type}-{hash(str(batches))}"
    for events in batches:
        store([{**event, "site_id": site_id} for event in events])
    period = day_of(site_id, tz=ZoneInfo(zone), event_type=event_type)
    assert summary(db, period, 100) == summary_from_pipeline(db, period, 100)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(
        st.builds(
            make_event,
            user_id=st.sampled_from([None, "u1", "u2", "u3"]),
            timestamp=st.datetimes(
                min_value=datetime(2025, 11, 8), max_value=datetime(2025, 11, 27), timezones=st.just(UTC)
            ).map(datetime.isoformat),
        ),
        max_size=40,
    ),
    zone=st.sampled_from(["UTC", "America/New_York"]),
)
def test_rollups_and_the_pipeline_agree_over_weeks(db, store, events, zone):
    site_id = f"site-weeks-{zone}-{hash(str(events))}"
    store([{**event, "site_id": site_id} for event in events])
    # Sunday 9th to Tuesday 25th: two whole UTC weeks (from Monday) and days on either side.
    period = Period(site_id, date(2025, 11, 9), date(2025, 11, 25), ZoneInfo(zone))
    assert summary(db, period, 100) == summary_from_pipeline(db, period, 100)


class ComparedTimestamp(datetime):
    """A timestamp that counts how often it is compared: a period's raw events should be
    sorted or grouped once, not scanned again for every bucket of a time series."""

    comparisons = 0


def counted(comparison):
    def compare(self, other):
        ComparedTimestamp.comparisons += 1
        return getattr(datetime, comparison)(self, other)

    return compare


for comparison in ("__lt__", "__le__", "__gt__", "__ge__"):
    setattr(ComparedTimestamp, comparison, counted(comparison))


def test_an_hourly_month_from_raw_events_reads_the_events_once_not_once_an_hour(db, monkeypatch):
    """Monrovia's days started at 00:44:30 UTC until 1972, off any quarter hour, so a month of
    its hours then is answered from raw events."""
    period = Period("site-abc-123", date(1960, 10, 1), date(1960, 10, 31), ZoneInfo("Africa/Monrovia"), None)
    events = [
        {
            **make_event(path=f"/{n % 7}", user_id=f"u{n % 50}"),
            "timestamp": ComparedTimestamp(1960, 10, 1 + n % 30, 1 + n % 23, tzinfo=UTC),
        }
        for n in range(3000)
    ]
    monkeypatch.setattr(queries.event_store, "events_between", lambda *args: iter(events))
    ComparedTimestamp.comparisons = 0
    series = queries.timeseries(db, period, "hour")
    assert len(series.points) == 31 * 24
    assert sum(point.views for point in series.points) == 3000
    # A sort and a binary search per bucket: about n·log2(n) + buckets·log2(n); a scan per
    # bucket would be 2·n·buckets (4.5 million here).
    assert ComparedTimestamp.comparisons < 3000 * 20


def test_a_quarter_hour_zone_reads_raw_events_until_the_quarter_rollups_are_built(db, counter_store):
    """A store an earlier release rolled up has no quarter-hour rollups until `migrate-store`
    builds them: read from the covers meanwhile, Kolkata's day missed the events of its first
    and last half hours."""
    events = [make_event(timestamp=t) for t in ("2025-11-14T18:45:00Z", "2025-11-15T12:00:00Z")]
    store_batch(db, counter_store, "batch-1", [to_message(event) for event in events])
    compactor.compact(db, counter_store)
    db.rollups.delete_many({"level": "quarter"})  # as an earlier release left them
    kolkata = day_of(tz=ZoneInfo("Asia/Kolkata"))
    assert summary(db, kolkata, 10).total_views == 2
    migration_store.record_step(db, QUARTERS_STEP, "built")
    assert summary(db, kolkata, 10).total_views == 1  # the covers now answer: none was rebuilt
