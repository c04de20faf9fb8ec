"""What `/stats`, `/stats/timeseries` and `/stats/breakdown` answer about rollups that reached
their caps."""

import uuid
from collections import Counter
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.rollups.caps import Caps
from reporting.periods import Period
from reporting.queries import breakdown, summary, summary_from_pipeline
from tasks.persist import store_batch
from tools.factories import make_event, new_site_id

SMALL = Caps(paths=3, event_types=2)
DAY = "site_id=site-abc-123&date=2025-11-15"


@pytest.fixture
def store_capped(db, counter_store):
    """Store events as a worker does and add them into rollups with small caps."""

    def store_events(events):
        store_batch(db, counter_store, uuid.uuid4().hex, [to_message(event) for event in events])
        compactor.compact(db, counter_store, SMALL)

    return store_events


def test_a_capped_day_reports_the_views_of_the_paths_it_did_not_keep(reporting, store_capped):
    store_capped([make_event(path=path) for path in ["/a", "/a", "/b", "/c"]])
    store_capped([make_event(path=path) for path in ["/d", "/d", "/d", "/a"]] + [make_event(path=None)])
    body = reporting.get(f"/stats?{DAY}").get_json()
    assert body["total_views"] == 9
    assert body["top_paths"] == [
        {"path": "/a", "views": 3},
        {"path": "/b", "views": 1},
        {"path": "/c", "views": 1},
    ]
    assert body["other_paths"] == {"views": 3}
    exact = reporting.get(f"/stats/aggregated?{DAY}").get_json()
    assert (exact["total_views"], exact["unique_users"]) == (body["total_views"], body["unique_users"])
    assert "other_paths" not in exact
    breakdown = reporting.get(f"/stats/breakdown?{DAY}&by=path").get_json()
    assert (breakdown["total"], breakdown["other"]) == (3, {"views": 3})


def test_a_day_under_the_caps_answers_as_before_and_agrees_with_the_aggregation(reporting, store_capped):
    store_capped(
        [make_event(path=path, user_id=user) for path, user in [("/a", "1"), ("/b", "2"), ("/a", "1")]]
    )
    body = reporting.get(f"/stats?{DAY}").get_json()
    assert list(body) == ["site_id", "date", "total_views", "unique_users", "top_paths"]
    assert body == reporting.get(f"/stats/aggregated?{DAY}").get_json()
    assert "other" not in reporting.get(f"/stats/breakdown?{DAY}&by=path").get_json()


def test_a_question_about_an_event_type_beyond_the_cap_says_what_it_cannot_count(reporting, store_capped):
    store_capped([make_event(event_type=kind) for kind in ["page_view", "click", "signup", "signup"]])
    body = reporting.get(f"/stats?{DAY}&event_type=signup").get_json()
    assert (body["total_views"], body["other_event_types"]) == (0, {"views": 2})
    assert reporting.get(f"/stats?{DAY}").get_json()["total_views"] == 4
    breakdown = reporting.get(f"/stats/breakdown?{DAY}&by=event_type").get_json()
    assert [row["value"] for row in breakdown["results"]] == ["click", "page_view"]
    assert breakdown["other"] == {"views": 2}


@pytest.mark.parametrize("by", ["path", "event_type"])
def test_a_breakdown_about_an_event_type_beyond_the_cap_says_what_it_cannot_count(
    reporting, store_capped, by
):
    store_capped(
        [make_event(event_type=kind, path=f"/{kind}") for kind in ["page_view", "click", "signup", "signup"]]
    )
    breakdown = reporting.get(f"/stats/breakdown?{DAY}&by={by}&event_type=signup").get_json()
    assert (breakdown["total"], breakdown["results"]) == (0, [])
    stats = reporting.get(f"/stats?{DAY}&event_type=signup").get_json()
    assert breakdown["other_event_types"] == stats["other_event_types"] == {"views": 2}
    unfiltered = reporting.get(f"/stats/breakdown?{DAY}&by={by}").get_json()
    assert "other_event_types" not in unfiltered  # every type counts in full


def test_a_breakdown_about_an_event_type_under_the_caps_answers_as_before(reporting, store_capped):
    store_capped([make_event(event_type=kind, path=f"/{kind}") for kind in ["page_view", "click", "click"]])
    breakdown = reporting.get(f"/stats/breakdown?{DAY}&by=path&event_type=click").get_json()
    assert breakdown["results"] == [{"value": "/click", "views": 2}]
    assert "other_event_types" not in breakdown


def test_a_timeseries_about_an_event_type_beyond_the_cap_says_what_it_cannot_count(reporting, store_capped):
    store_capped(
        [
            make_event(event_type=kind, timestamp=f"2025-11-15T{hour}:00:00Z")
            for kind, hour in [("page_view", 10), ("click", 10), ("signup", 10), ("signup", 11)]
        ]
    )
    # The day's rollup met signup with its two types taken; the hour of 11:00 kept it.
    for interval, counted, beyond in [("day", 0, 2), ("hour", 1, 1)]:
        series = reporting.get(f"/stats/timeseries?{DAY}&interval={interval}&event_type=signup").get_json()
        assert sum(point["views"] for point in series["series"]) == counted
        assert series["other_event_types"] == {"views": beyond}, interval
    assert "other_event_types" not in reporting.get(f"/stats/timeseries?{DAY}").get_json()


capped_events = st.lists(
    st.builds(
        make_event,
        event_type=st.sampled_from(["a", "b", "c", "d"]),
        path=st.sampled_from([None, "/1", "/2", "/3", "/4", "/5"]),
        user_id=st.sampled_from([None, "u1", "u2", "u3"]),
        timestamp=st.datetimes(
            min_value=datetime(2025, 11, 14, 20), max_value=datetime(2025, 11, 17, 4), timezones=st.just(UTC)
        ).map(datetime.isoformat),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(capped_events, min_size=1, max_size=3),
    days=st.sampled_from([(15, 15), (14, 16)]),
    zone=st.sampled_from(["UTC", "Europe/Berlin"]),
    event_type=st.sampled_from([None, "a", "d"]),
)
def test_an_answer_that_does_not_say_it_is_capped_equals_the_aggregation(
    db, store_capped, batches, days, zone, event_type
):
    """And one that says so falls short by no more than it says."""
    site_id = new_site_id()
    for events in batches:
        store_capped([{**event, "site_id": site_id} for event in events])
    first, last = (date(2025, 11, day) for day in days)
    period = Period(site_id, first, last, ZoneInfo(zone), event_type)
    answer, exact = summary(db, period, 100), summary_from_pipeline(db, period, 100)
    if not (answer.other_paths or answer.other_event_types):
        assert answer == exact
    assert exact.total_views - answer.other_event_types <= answer.total_views <= exact.total_views
    by_path = breakdown(db, period, "path", 100, 0)
    assert by_path.other_event_types == answer.other_event_types
    if not (by_path.other or by_path.other_event_types):
        assert Counter({row.value: row.views for row in by_path.results}) == Counter(
            {row.path: row.views for row in exact.top_paths}
        )
