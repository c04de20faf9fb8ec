import time
from datetime import UTC, datetime, timedelta

import pytest

from app.queue import counters, ledger
from tools.factories import SEED_EXAMPLE_STATS, make_event, make_message, seed_example_events

MISSING = "Missing required parameters: site_id, date (YYYY-MM-DD)"


@pytest.mark.parametrize("endpoint", ["/stats", "/stats/aggregated"])
def test_stats_answer_in_the_contract_shape(reporting, store, endpoint):
    store(seed_example_events("site-abc-123"))
    response = reporting.get(f"{endpoint}?site_id=site-abc-123&date=2025-11-15")
    assert response.status_code == 200
    assert response.get_json() == {"site_id": "site-abc-123", **SEED_EXAMPLE_STATS}
    assert list(response.get_json()) == ["site_id", "date", "total_views", "unique_users", "top_paths"]


@pytest.mark.parametrize("endpoint", ["/stats", "/stats/aggregated"])
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?site_id=site-abc-123",
        "?date=2025-11-15",
        "?site_id=&date=2025-11-15",
        "?site_id=site-abc-123&date=15-11-2025",
        "?site_id=site-abc-123&date=2025-02-30",
        "?site_id=site-abc-123&date=2025-11-15T00:00:00",
    ],
)
def test_missing_or_malformed_parameters_give_400(reporting, endpoint, query):
    response = reporting.get(endpoint + query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "error"
    assert body["message"] == MISSING


def test_health_is_ok_when_mongo_answers(reporting):
    assert reporting.get("/health").get_json() == {"status": "ok", "service": "reporting-service"}


def test_a_range_in_a_time_zone_is_echoed_with_its_figures(reporting, store):
    store([make_event(timestamp="2025-11-14T23:30:00Z"), make_event(timestamp="2025-11-16T12:00:00Z")])
    response = reporting.get(
        "/stats?site_id=site-abc-123&start=2025-11-15&end=2025-11-16&tz=Europe/Berlin&limit=1"
    )
    assert response.get_json() == {
        "site_id": "site-abc-123",
        "start": "2025-11-15",
        "end": "2025-11-16",
        "tz": "Europe/Berlin",
        "total_views": 2,
        "unique_users": 1,
        "top_paths": [{"path": "/pricing", "views": 2}],
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("site_id=s&start=2025-11-15", MISSING),
        ("site_id=s&start=2025-11-16&end=2025-11-15", MISSING),
        ("site_id=s&start=2024-01-01&end=2025-01-01", MISSING),  # 367 days
        ("site_id=s&date=2025-11-15&start=2025-11-15&end=2025-11-16", MISSING),
        ("site_id=s&date=2025-11-15&tz=Mars/Olympus", "Invalid parameters: tz"),
        ("site_id=s&date=2025-11-15&limit=101", "Invalid parameters: limit"),
        ("site_id=s&date=2025-11-15&limit=0", "Invalid parameters: limit"),
    ],
)
def test_bad_ranges_zones_and_limits_are_400_naming_the_parameter(reporting, query, message):
    response = reporting.get(f"/stats?{query}")
    assert response.status_code == 400
    assert response.get_json()["message"] == message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("site_id=s&date=9999-12-31", "Invalid parameters: period"),  # its end is past year 9999
        ("site_id=s&date=0001-01-01&tz=Asia/Tokyo", "Invalid parameters: period"),  # starts before year 1
        ("site_id=s&start=9999-12-30&end=9999-12-31&tz=America/New_York", "Invalid parameters: period"),
        ("site_id=s&date=2025-11-15&tz=America", "Invalid parameters: tz"),  # a folder of the zone database
        ("site_id=s&date=2025-11-15&tz=", "Invalid parameters: tz"),
    ],
)
@pytest.mark.parametrize(
    "endpoint", ["/stats", "/stats/aggregated", "/stats/timeseries", "/stats/breakdown?by=path&"]
)
def test_periods_and_zones_that_cannot_be_computed_are_400(reporting, endpoint, query, message):
    separator = "" if endpoint.endswith("&") else "?"
    response = reporting.get(f"{endpoint}{separator}{query}")
    assert response.status_code == 400
    assert response.get_json()["message"] == message


# Days at the calendar's ends whose instants a datetime holds, though rollups around them
# (the week from Monday 9999-12-27) end past year 9999; some zones have whole-hour offsets
# (read from rollups), some not (New York's local mean time before 1883: read from raw events).
CALENDAR_END_QUESTIONS = [
    "date=9999-12-27",
    "date=9999-12-26&tz=America/New_York",
    "start=9999-12-20&end=9999-12-30",
    "start=9999-12-24&end=9999-12-30&tz=America/New_York",
    "date=9999-12-30&tz=Etc/GMT%2B3",
    "date=0001-01-01&tz=America/New_York",
    "date=0001-01-01&tz=Etc/GMT%2B5",
    "start=0001-01-01&end=0001-01-09",
]
CALENDAR_END_EVENTS = [
    "9999-12-26T20:00:00Z",
    "9999-12-27T10:00:00Z",
    "9999-12-30T23:00:00Z",
    "9999-12-31T02:00:00Z",
    "0001-01-01T03:00:00Z",
    "0001-01-01T06:00:00Z",
    "0001-01-02T12:00:00Z",
]


@pytest.mark.parametrize("query", CALENDAR_END_QUESTIONS)
def test_days_at_the_calendar_s_ends_are_answered_by_every_endpoint_alike(reporting, store, query):
    store(
        [
            make_event(timestamp=moment, path=f"/{n}", user_id=f"u{n}")
            for n, moment in enumerate(CALENDAR_END_EVENTS)
        ]
    )
    question = f"site_id=site-abc-123&{query}"
    stats = reporting.get(f"/stats?{question}")
    assert stats.status_code == 200, stats.get_json()
    assert stats.get_json() == reporting.get(f"/stats/aggregated?{question}").get_json()
    assert stats.get_json()["total_views"] > 0
    for interval in ("day", "hour"):
        series = reporting.get(f"/stats/timeseries?{question}&interval={interval}")
        assert series.status_code == 200, (interval, series.get_json())
        assert sum(point["views"] for point in series.get_json()["series"]) == stats.get_json()["total_views"]
    breakdown = reporting.get(f"/stats/breakdown?{question}&by=path&limit=100")
    assert breakdown.status_code == 200, breakdown.get_json()
    assert breakdown.get_json()["results"] == [
        {"value": row["path"], "views": row["views"]} for row in stats.get_json()["top_paths"]
    ]


def test_the_timeseries_lists_every_day_with_views_and_users(reporting, store):
    store(
        [
            make_event(timestamp="2025-11-15T10:00:00Z"),
            make_event(timestamp="2025-11-17T10:00:00Z", user_id="b"),
        ]
    )
    body = reporting.get("/stats/timeseries?site_id=site-abc-123&start=2025-11-15&end=2025-11-17").get_json()
    assert body["interval"] == "day"
    assert body["series"] == [
        {"start": "2025-11-15", "views": 1, "unique_users": 1},
        {"start": "2025-11-16", "views": 0, "unique_users": 0},
        {"start": "2025-11-17", "views": 1, "unique_users": 1},
    ]


def test_an_hourly_timeseries_is_limited_to_31_days(reporting):
    response = reporting.get("/stats/timeseries?site_id=s&start=2025-01-01&end=2025-02-01&interval=hour")
    assert response.status_code == 400
    assert reporting.get("/stats/timeseries?site_id=s&date=2025-01-01&interval=week").status_code == 400


def test_a_breakdown_by_event_type_is_paginated(reporting, store):
    store([make_event(event_type=kind) for kind in ["a", "b", "b", "c", "c", "c"]])
    body = reporting.get(
        "/stats/breakdown?site_id=site-abc-123&date=2025-11-15&by=event_type&limit=2&offset=1"
    )
    assert body.get_json() == {
        "site_id": "site-abc-123",
        "date": "2025-11-15",
        "by": "event_type",
        "total": 3,
        "limit": 2,
        "offset": 1,
        "results": [{"value": "b", "views": 2}, {"value": "a", "views": 1}],
    }
    assert reporting.get("/stats/breakdown?site_id=s&date=2025-11-15").status_code == 400


def test_realtime_counts_the_last_five_minutes_only(reporting, store):
    now = datetime.now(UTC)
    store(
        [
            make_event(timestamp=(now - timedelta(seconds=30)).isoformat(), user_id="a"),
            make_event(timestamp=(now - timedelta(seconds=90)).isoformat(), user_id="a"),
            make_event(timestamp=(now - timedelta(seconds=120)).isoformat(), user_id="b"),
            make_event(timestamp=(now - timedelta(minutes=7)).isoformat(), user_id="b"),  # b's latest counts
            make_event(timestamp=(now - timedelta(minutes=6)).isoformat(), user_id="c"),
            make_event(timestamp="2025-11-15T10:00:00Z", user_id="d"),
        ]
    )
    assert reporting.get("/stats/realtime?site_id=site-abc-123").get_json() == {
        "site_id": "site-abc-123",
        "window_seconds": 300,
        "events": 3,
        "unique_users": 2,
    }


def test_realtime_leaves_out_events_from_far_in_the_future(reporting, store, counter_store):
    now = datetime.now(UTC)
    store(
        [
            make_event(timestamp=(now + timedelta(seconds=20)).isoformat(), user_id="skewed-clock"),
            make_event(timestamp=(now + timedelta(days=300)).isoformat(), user_id="far-future"),
        ]
    )
    body = reporting.get("/stats/realtime?site_id=site-abc-123").get_json()
    assert (body["events"], body["unique_users"]) == (1, 1)
    assert counter_store.zcard("analytics:realtime:site-abc-123:events") == 1  # not even kept


def test_a_site_days_counters_expire_and_the_totals_stay(counter_store):
    pipe = counter_store.pipeline()
    messages = [make_message()]
    ledger.record(pipe, "batch-1", messages, counters.additions({counters.ACCEPTED: messages}))
    pipe.execute()
    day_keys = counter_store.keys("analytics:counters:accepted:*")
    assert day_keys
    assert all(0 < counter_store.ttl(key) <= counters.SITE_DAY_SECONDS for key in day_keys)
    assert counter_store.ttl("analytics:counters:accepted") == -1


def test_an_answer_about_today_is_cached_for_seconds_then_recomputed(reporting, store, monkeypatch):
    today = datetime.now(UTC).date().isoformat()
    url = f"/stats?site_id=site-abc-123&date={today}"
    store([make_event(timestamp=datetime.now(UTC).isoformat())])
    first = reporting.get(url)
    assert (first.headers["X-Cache"], first.get_json()["total_views"]) == ("miss", 1)
    assert reporting.get(url).headers["X-Cache"] == "hit"
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3)  # past the 2 s live TTL
    assert reporting.get(url).headers["X-Cache"] == "miss"


def test_a_cached_past_answer_is_replaced_once_new_events_reach_the_rollups(reporting, store):
    url = "/stats?site_id=site-abc-123&date=2025-11-15"
    store([make_event()])
    assert reporting.get(url).get_json()["total_views"] == 1
    assert reporting.get(url).headers["X-Cache"] == "hit"
    store([make_event()])
    fresh = reporting.get(url)
    assert (fresh.headers["X-Cache"], fresh.get_json()["total_views"]) == ("miss", 2)


def test_unknown_parameters_share_the_cached_answer_instead_of_making_keys(reporting, store, counter_store):
    store([make_event()])
    assert reporting.get("/stats?site_id=site-abc-123&date=2025-11-15").headers["X-Cache"] == "miss"
    for n in range(5):
        response = reporting.get(f"/stats?site_id=site-abc-123&date=2025-11-15&_={n}&bust{n}=1")
        assert response.headers["X-Cache"] == "hit"
    assert len(counter_store.keys("analytics:cache:*")) == 1


@pytest.mark.parametrize(
    "url",
    [
        "/stats?site_id=a&site_id=b&date=2025-11-15",
        "/stats/aggregated?site_id=a&date=2025-11-15&date=2025-11-16",
        "/stats/timeseries?site_id=a&start=2025-11-15&end=2025-11-16&interval=day&interval=hour",
        "/stats/breakdown?site_id=a&date=2025-11-15&by=path&limit=5&limit=6",
        "/stats/realtime?site_id=a&site_id=a",
        "/health/pipeline?site_id=a&date=2025-11-15&date=2025-11-15",
    ],
)
def test_a_parameter_given_twice_is_400_naming_it(reporting, url):
    """The views read a parameter's first value and the cache key all of them, sorted: two
    questions would share one answer."""
    response = reporting.get(url)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "error"
    assert body["message"].startswith("Parameters given more than once: ")
    [repeated] = body["errors"]
    assert body["errors"][repeated] == ["Give this parameter once."]
    assert repeated in body["message"]


def test_unknown_parameters_may_repeat(reporting):
    assert reporting.get("/stats?site_id=a&date=2025-11-15&_=1&_=2").status_code == 200
