"""The stats query logic on mongomock; both ways of asking must give the same answer."""

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import storage
from reporting.queries import PathViews, summary_from_events, summary_from_pipelines
from tests.factories import SEED_EXAMPLE_STATS, make_event, seed_example_events

SUMMARISERS = [summary_from_events, summary_from_pipelines]
DAY = date(2025, 11, 15)


def store(db, events):
    from app.schemas import to_message

    storage.insert_events(db, [to_message(event) for event in events])


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_the_original_readme_example_gives_its_totals(db, summarise):
    store(db, seed_example_events("site-abc-123"))
    summary = summarise(db, "site-abc-123", DAY)
    assert summary.total_views == SEED_EXAMPLE_STATS["total_views"]
    assert summary.unique_users == SEED_EXAMPLE_STATS["unique_users"]
    assert [vars(p) for p in summary.top_paths] == SEED_EXAMPLE_STATS["top_paths"]


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_an_empty_day_gives_zeros(db, summarise):
    summary = summarise(db, "site-abc-123", DAY)
    assert (summary.total_views, summary.unique_users, summary.top_paths) == (0, 0, [])


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_the_day_is_the_utc_day_of_the_timestamp(db, summarise):
    store(
        db,
        [
            make_event(timestamp="2025-11-15T00:30:00+01:00"),  # 14th 23:30 UTC
            make_event(timestamp="2025-11-15T00:00:00Z"),
            make_event(timestamp="2025-11-15T23:59:59.999Z"),
            make_event(timestamp="2025-11-15T23:30:00-01:00"),  # 16th 00:30 UTC
        ],
    )
    assert summarise(db, "site-abc-123", DAY).total_views == 2


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_events_without_path_or_user_count_only_as_views(db, summarise):
    store(db, [make_event(path=None, user_id=None), make_event(path="", user_id=""), make_event()])
    summary = summarise(db, "site-abc-123", DAY)
    assert summary.total_views == 3
    assert summary.unique_users == 1
    assert summary.top_paths == [PathViews("/pricing", 1)]


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_top_paths_are_the_ten_most_viewed_with_ties_by_path(db, summarise):
    events = [make_event(path=f"/p{n:02d}") for n in range(12) for _ in range(1 + n % 3)]
    store(db, events)
    top = summarise(db, "site-abc-123", DAY).top_paths
    assert len(top) == 10
    assert [p.views for p in top] == [3, 3, 3, 3, 2, 2, 2, 2, 1, 1]
    assert [p.path for p in top[:4]] == ["/p02", "/p05", "/p08", "/p11"]


@pytest.mark.parametrize("summarise", SUMMARISERS)
def test_other_sites_are_not_counted(db, summarise):
    store(db, [make_event(site_id="other"), make_event()])
    assert summarise(db, "site-abc-123", DAY).total_views == 1


events_strategy = st.lists(
    st.builds(
        make_event,
        path=st.sampled_from([None, "", "/", "/a", "/b.c", "/$x", "/ü"]),
        user_id=st.sampled_from([None, "", "u1", "u2", "u3"]),
        timestamp=st.datetimes(
            min_value=datetime(2025, 11, 14, 20), max_value=datetime(2025, 11, 16, 4), timezones=st.just(UTC)
        ).map(datetime.isoformat),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(events=events_strategy)
def test_both_summaries_agree_on_any_events(events):
    import mongomock

    db: Any = mongomock.MongoClient(tz_aware=True).get_database("analytics")
    store(db, events)
    assert summary_from_events(db, "site-abc-123", DAY) == summary_from_pipelines(db, "site-abc-123", DAY)
