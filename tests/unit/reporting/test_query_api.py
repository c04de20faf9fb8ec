"""`POST /api/v2/query`: requests shaped as Plausible's clients send them (each checked against
Plausible's published JSON schema) answer what our `/stats` endpoints answer; anything we do
not support is a 400 naming it."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from jsonschema import Draft7Validator

from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.rollups.caps import Caps
from tasks.persist import store_batch
from tests.unit.reporting.test_filters import SITE, brute_force, traffic, users, value
from tools.factories import make_event

# Plausible's published request schema, where a developer put it (tests/fixtures/plausible/
# README.md says how): Plausible's code is AGPL-licensed, so the repository does not carry it.
SCHEMA_FILE = Path(__file__).parents[2] / "fixtures" / "plausible" / "query-api-schema.json"
VALIDATOR = (
    Draft7Validator(json.loads(SCHEMA_FILE.read_text()), format_checker=Draft7Validator.FORMAT_CHECKER)
    if SCHEMA_FILE.exists()
    else None
)
with_schema = pytest.mark.skipif(VALIDATOR is None, reason=f"Plausible's schema is not at {SCHEMA_FILE}")
RANGE = ["2025-11-14", "2025-11-15"]
PERIOD = f"site_id={SITE}&start=2025-11-14&end=2025-11-15"


def plausible_valid(request):
    """The request, once Plausible's schema admits it (where the schema is at hand)."""
    if VALIDATOR is not None:
        errors = [error.message for error in VALIDATOR.iter_errors(request)]
        assert errors == [], errors
    return request


def ask(reporting, **request):
    """The answer to a request that Plausible's schema admits."""
    response = reporting.post("/api/v2/query", json=plausible_valid({"site_id": SITE, **request}))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def rows(body):
    return {tuple(row["dimensions"]): row["metrics"] for row in body["results"]}


@pytest.fixture
def traffic_stored(store):
    store(traffic())


@with_schema
def test_the_schema_fixture_refuses_what_plausible_refuses():
    assert VALIDATOR is not None
    assert not VALIDATOR.is_valid({"site_id": SITE, "metrics": ["visitors"]})
    assert not VALIDATOR.is_valid({"site_id": SITE, "metrics": ["visitors"], "date_range": "7d", "limit": 3})


def test_the_site_totals_equal_those_of_stats(reporting, traffic_stored):
    body = ask(reporting, metrics=["visitors", "pageviews", "events"], date_range=RANGE)
    stats = reporting.get(f"/stats?{PERIOD}").get_json()
    page_views = reporting.get(f"/stats?{PERIOD}&event_type=page_view").get_json()
    assert body["results"] == [
        {
            "metrics": [stats["unique_users"], page_views["total_views"], stats["total_views"]],
            "dimensions": [],
        }
    ]
    assert body["meta"] == {"from": "rollups"}
    assert body["query"]["date_range"] == ["2025-11-14T00:00:00+00:00", "2025-11-15T23:59:59+00:00"]


@pytest.mark.parametrize(
    ("dimension", "by"),
    [
        ("event:page", "path"),
        ("event:name", "event_type"),
        ("visit:source", "source"),
        ("visit:referrer", "referrer"),
        ("visit:device", "device"),
        ("visit:browser", "browser"),
        ("visit:os", "os"),
        ("visit:country", "country"),
        ("event:props:plan", "prop:plan"),
    ],
)
def test_a_dimension_breaks_down_as_stats_breakdown_does(reporting, traffic_stored, db, dimension, by):
    body = ask(reporting, metrics=["events"], date_range=RANGE, dimensions=[dimension])
    breakdown = reporting.get(f"/stats/breakdown?{PERIOD}&by={by}&limit=100").get_json()
    assert rows(body) == {(row["value"],): [row["views"]] for row in breakdown["results"]}
    assert body["meta"]["from"] == "rollups"
    # Visitors per value: the rollups keep no users per value, so the raw events answer.
    body = ask(reporting, metrics=["visitors", "pageviews"], date_range=RANGE, dimensions=[dimension])
    events = brute_force(db, SITE, [])
    expected = {}
    for found in {value(event, by) for event in events} - {None}:
        chosen = [event for event in events if value(event, by) == found]
        expected[(found,)] = [users(chosen), sum(event["event_type"] == "page_view" for event in chosen)]
    assert rows(body) == expected
    assert body["meta"]["from"] == ("rollups" if dimension == "event:name" else "events")


@pytest.mark.parametrize(("dimension", "interval"), [("time:day", "day"), ("time:hour", "hour")])
def test_a_time_dimension_counts_as_the_timeseries_does(reporting, traffic_stored, dimension, interval):
    body = ask(reporting, metrics=["visitors", "events"], date_range=RANGE, dimensions=[dimension])
    series = reporting.get(f"/stats/timeseries?{PERIOD}&interval={interval}").get_json()["series"]
    expected = [[point["unique_users"], point["views"]] for point in series if point["views"]]
    assert [row["metrics"] for row in body["results"]] == expected
    if interval == "day":
        assert [row["dimensions"] for row in body["results"]] == [["2025-11-14"], ["2025-11-15"]]
    else:
        assert body["results"][0]["dimensions"][0].startswith("2025-11-14 ")


def test_page_views_beyond_the_rollups_caps_are_counted_from_the_events(reporting, db, counter_store):
    """With one event type kept per rollup, page views may lie beyond the caps: exact still."""
    store_batch(db, counter_store, uuid.uuid4().hex, [to_message(event) for event in traffic()])
    compactor.compact(db, counter_store, Caps(paths=1000, event_types=1))
    body = ask(reporting, metrics=["pageviews"], date_range=RANGE)
    page_views = brute_force(db, SITE, [("event_type", "is", ["page_view"])])
    assert (body["results"][0]["metrics"], body["meta"]["from"]) == ([len(page_views)], "events")


@pytest.mark.parametrize(
    ("dimension", "labels"),
    [
        ("time:week", ["2025-10-30", "2025-11-03", "2025-11-10", "2025-11-17"]),
        ("time:month", ["2025-10-30", "2025-11-01"]),
    ],
)
def test_weeks_and_months_are_labelled_by_their_first_day_in_the_range(reporting, store, dimension, labels):
    store([make_event(timestamp=f"2025-{day}T12:00:00Z") for day in ("10-30", "11-03", "11-09", "11-17")])
    body = ask(
        reporting,
        metrics=["events"],
        date_range=["2025-10-30", "2025-11-20"],
        dimensions=[dimension],
        include={"time_labels": True},
    )
    assert body["meta"]["time_labels"] == labels
    counts = {"time:week": [1, 2, 1], "time:month": [1, 3]}[dimension]
    assert [row["metrics"][0] for row in body["results"]] == counts


@pytest.mark.parametrize(("metrics", "source"), [(["events"], "rollups"), (["events", "visitors"], "events")])
def test_a_time_dimension_and_another_count_as_the_events_do(reporting, traffic_stored, db, metrics, source):
    body = ask(reporting, metrics=metrics, date_range=RANGE, dimensions=["visit:browser", "time:day"])
    groups: dict[tuple[str, str], list[dict]] = {}
    for event in brute_force(db, SITE, []):
        groups.setdefault((event["browser"], f"{event['timestamp']:%Y-%m-%d}"), []).append(event)
    expected = {row: [len(events), users(events)][: len(metrics)] for row, events in groups.items()}
    assert rows(body) == expected
    days = [row["dimensions"][1] for row in body["results"]]
    assert days == sorted(days), "time ascending first"
    assert body["meta"]["from"] == source


@pytest.mark.parametrize(
    ("filters", "v1"),
    [
        ([["is", "visit:source", ["Google", "X"]]], "source==Google|X"),
        ([["is_not", "event:page", ["/admin"]]], "path!=/admin"),
        ([["contains", "event:page", ["/blog"]]], "path~/blog"),
        (
            [["is", "event:props:plan", ["pro"]], ["is", "event:name", ["signup"]]],
            "prop:plan==pro;event_type==signup",
        ),
    ],
)
def test_filters_count_what_the_stats_filters_count(reporting, traffic_stored, filters, v1):
    body = ask(reporting, metrics=["visitors", "events"], date_range=RANGE, filters=filters)
    stats = reporting.get(f"/stats?{PERIOD}&filters={quote(v1)}").get_json()
    assert body["results"][0]["metrics"] == [stats["unique_users"], stats["total_views"]]
    assert body["meta"]["from"] == "events"
    assert body["query"]["filters"] == filters


def test_a_filter_may_ignore_case(reporting, traffic_stored):
    filters = [["contains", "visit:source", ["GOOG"], {"case_sensitive": False}]]
    body = ask(reporting, metrics=["events"], date_range=RANGE, filters=filters)
    stats = reporting.get(f"/stats?{PERIOD}&filters=source==Google").get_json()
    assert body["results"][0]["metrics"] == [stats["total_views"]]


def test_rows_are_ordered_and_paginated(reporting, traffic_stored):
    pages: dict[str, object] = {
        "metrics": ["events", "visitors"],
        "date_range": RANGE,
        "dimensions": ["event:page"],
    }
    by_events = [row["metrics"][0] for row in ask(reporting, **pages)["results"]]
    assert by_events == sorted(by_events, reverse=True)
    pages["order_by"] = [["visitors", "asc"], ["event:page", "desc"]]
    ordered = ask(reporting, **pages)
    keys = [(row["metrics"][1], row["dimensions"][0]) for row in ordered["results"]]
    assert keys == sorted(sorted(keys, key=lambda k: k[1], reverse=True), key=lambda k: k[0])
    page = ask(reporting, **pages, pagination={"limit": 2, "offset": 1}, include={"total_rows": True})
    assert page["results"] == ordered["results"][1:3]
    assert page["meta"]["total_rows"] == len(ordered["results"])
    assert page["query"]["pagination"] == {"limit": 2, "offset": 1}


def today():
    return datetime.now(UTC).date()


def test_date_range_presets_are_days_before_today_in_utc(reporting, store):
    now = today()
    store([make_event(timestamp=f"{now - timedelta(days=n)}T12:00:00Z") for n in range(0, 40)])
    first_of_month = now.replace(day=1)
    expected = {
        "day": (now, now),
        "7d": (now - timedelta(days=7), now - timedelta(days=1)),
        "30d": (now - timedelta(days=30), now - timedelta(days=1)),
        "month": (first_of_month, (first_of_month + timedelta(days=32)).replace(day=1) - timedelta(days=1)),
        "year": (date(now.year, 1, 1), date(now.year, 12, 31)),
        "all": (now - timedelta(days=39), now),
    }
    for preset, (first, last) in expected.items():
        body = ask(reporting, metrics=["events"], date_range=preset)
        assert body["query"]["date_range"][0] == f"{first}T00:00:00+00:00", preset
        assert body["query"]["date_range"][1] == f"{last}T23:59:59+00:00", preset
        stats = reporting.get(f"/stats?site_id={SITE}&start={first}&end={min(last, now)}").get_json()
        assert body["results"][0]["metrics"] == [stats["total_views"]], preset
    last_month_end = first_of_month - timedelta(days=1)
    for preset, months in (("6mo", 6), ("12mo", 12)):
        body = ask(reporting, metrics=["events"], date_range=preset)
        index = now.year * 12 + now.month - 1 - months
        first = date(index // 12, index % 12 + 1, 1)
        assert body["query"]["date_range"] == [f"{first}T00:00:00+00:00", f"{last_month_end}T23:59:59+00:00"]


def test_a_site_without_events_answers_all_with_today(reporting):
    body = ask(reporting, metrics=["visitors"], date_range="all")
    assert body["results"] == [{"metrics": [0], "dimensions": []}]
    assert body["query"]["date_range"][0] == f"{today()}T00:00:00+00:00"


UNSUPPORTED = [
    ({"metrics": ["visits"]}, "metrics", "Metric not supported: visits"),
    ({"metrics": ["bounce_rate"]}, "metrics", "Metric not supported: bounce_rate"),
    ({"metrics": ["visit_duration"]}, "metrics", "Metric not supported: visit_duration"),
    ({"metrics": ["views_per_visit"]}, "metrics", "Metric not supported: views_per_visit"),
    (
        {"metrics": ["percentage"], "dimensions": ["event:page"]},
        "metrics",
        "Metric not supported: percentage",
    ),
    ({"dimensions": ["visit:city"]}, "dimensions", "Dimension not supported: visit:city"),
    ({"dimensions": ["event:goal"]}, "dimensions", "Dimension not supported: event:goal"),
    ({"dimensions": ["visit:entry_page"]}, "dimensions", "Dimension not supported: visit:entry_page"),
    ({"dimensions": ["time"]}, "dimensions", "Dimension not supported: time"),
    (
        {"filters": [["contains_not", "event:page", ["/a"]]]},
        "filters",
        "Filter operator not supported: contains_not",
    ),
    ({"filters": [["matches", "event:page", ["^/a"]]]}, "filters", "Filter operator not supported: matches"),
    ({"filters": [["or", [["is", "event:page", ["/a"]]]]]}, "filters", "Filter operator not supported: or"),
    ({"filters": [["not", ["is", "event:page", ["/a"]]]]}, "filters", "Filter operator not supported: not"),
    (
        {"filters": [["is", "visit:region", ["DE-BE"]]]},
        "filters",
        "Filter dimension not supported: visit:region",
    ),
    (
        {"date_range": ["2025-11-14T00:00:00+00:00", "2025-11-14T12:00:00+00:00"]},
        "date_range",
        "with times is not supported",
    ),
    ({"date_range": ["2024-01-01", "2025-11-14"]}, "date_range", "A range spans at most 366 days"),
    ({"dimensions": ["time:hour"], "date_range": "year"}, "date_range", "time:hour spans at most 31 days"),
    ({"date_range": ["9999-12-31", "9999-12-31"]}, "date_range", "past the ends of the calendar"),
    (
        {"include": {"comparisons": {"mode": "previous_period"}}},
        "include",
        "include not supported: comparisons",
    ),
    (
        {"order_by": [["pageviews", "desc"]]},
        "order_by",
        "Can only order by a metric or dimension of the query",
    ),
]


@pytest.mark.parametrize(("change", "key", "says"), UNSUPPORTED)
def test_what_plausible_accepts_and_we_do_not_support_is_a_400_naming_it(reporting, change, key, says):
    request = plausible_valid({"site_id": SITE, "metrics": ["visitors"], "date_range": RANGE, **change})
    response = reporting.post("/api/v2/query", json=request)
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "error"
    assert says in body["message"]
    assert says in body["errors"][key][0]


@pytest.mark.parametrize(
    ("request_body", "key"),
    [
        ({"site_id": SITE, "metrics": ["visitors"]}, "date_range"),
        ({"site_id": SITE, "metrics": [], "date_range": "day"}, "metrics"),
        ({"site_id": SITE, "metrics": ["visitors"], "date_range": "day", "limit": 3}, "limit"),
        ({"site_id": SITE, "metrics": ["rainfall"], "date_range": "day"}, "metrics"),
        ({"site_id": SITE, "metrics": [{"a": 1}], "date_range": "day"}, "metrics"),
        ({"site_id": SITE, "metrics": ["visitors"], "date_range": "fortnight"}, "date_range"),
        (
            {"site_id": SITE, "metrics": ["visitors"], "date_range": ["2025-02-30", "2025-03-01"]},
            "date_range",
        ),
        (
            {"site_id": SITE, "metrics": ["visitors"], "date_range": "day", "pagination": {"limit": 0}},
            "pagination",
        ),
        (
            {
                "site_id": SITE,
                "metrics": ["visitors"],
                "date_range": "day",
                "filters": [["is", "event:page", [1.5]]],
            },
            "filters",
        ),
        ({"site_id": 7, "metrics": ["visitors"], "date_range": "day"}, "site_id"),
        ([1, 2], "body"),
    ],
)
def test_what_plausible_refuses_is_a_400_too(reporting, request_body, key):
    if VALIDATOR is not None:
        assert not VALIDATOR.is_valid(request_body)
    response = reporting.post("/api/v2/query", json=request_body)
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == [key]


def test_a_body_that_is_not_json_is_a_400(reporting):
    response = reporting.post("/api/v2/query", data="site_id=x", content_type="text/plain")
    assert response.status_code == 400
    assert response.get_json()["message"] == "The request body must be a JSON object"


def test_a_body_larger_than_an_events_is_a_413(reporting):
    request = {
        "site_id": SITE,
        "metrics": ["visitors"],
        "date_range": "day",
        "filters": [["is", "event:page", ["/" * 70000]]],
    }
    response = reporting.post("/api/v2/query", json=request)
    assert response.status_code == 413
    assert response.get_json()["status"] == "error"
