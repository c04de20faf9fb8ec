"""`/stats/breakdown` by where visitors came from and what they used, from the rollups, and
its raw cross-check `/stats/aggregated?by=`."""

import uuid

import pytest

from app.rollups import compactor
from app.rollups.caps import Caps
from tasks.persist import store_batch
from tools.factories import make_message

DAY = "site_id=site-abc-123&date=2025-11-15"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)


def visit(**fields):
    """A queued page view with what ingestion passes on about its visitor."""
    return make_message() | fields


@pytest.fixture
def stored(db, counter_store):
    def store(messages, caps=compactor.DEFAULT_CAPS):
        store_batch(db, counter_store, uuid.uuid4().hex, messages)
        compactor.compact(db, counter_store, caps)

    return store


TRAFFIC = [
    visit(referrer="https://www.google.de/", user_agent=CHROME, country="DE", props={"plan": "pro"}),
    visit(referrer="https://www.google.com/", user_agent=IPHONE, country="US", props={"plan": "free"}),
    visit(referrer="https://t.co/x", user_agent=IPHONE, country="US", props={"plan": "pro", "trial": True}),
    visit(
        url="https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=launch",
        user_agent=CHROME,
    ),
    visit(),
]


@pytest.mark.parametrize(
    ("by", "results"),
    [
        ("source", [("Google", 2), ("X", 1), ("newsletter", 1)]),
        ("referrer", [("https://t.co/x", 1), ("https://www.google.com/", 1), ("https://www.google.de/", 1)]),
        ("utm_source", [("newsletter", 1)]),
        ("utm_medium", [("email", 1)]),
        ("utm_campaign", [("launch", 1)]),
        ("device", [("desktop", 2), ("mobile", 2)]),
        ("browser", [("Chrome", 2), ("Mobile Safari", 2)]),
        ("os", [("Windows", 2), ("iOS", 2)]),
        ("country", [("US", 2), ("DE", 1)]),
        ("prop:plan", [("pro", 2), ("free", 1)]),
        ("prop:trial", [("true", 1)]),
        ("prop:absent", []),
    ],
)
def test_a_breakdown_counts_the_views_of_each_value_and_agrees_with_the_raw_events(
    reporting, stored, by, results
):
    stored(TRAFFIC)
    body = reporting.get(f"/stats/breakdown?{DAY}&by={by}").get_json()
    expected = [{"value": value, "views": views} for value, views in results]
    assert (body["by"], body["total"], body["results"]) == (by, len(results), expected)
    assert "other" not in body
    exact = reporting.get(f"/stats/aggregated?{DAY}&by={by}").get_json()
    assert (exact["by"], exact["results"]) == (by, expected)


def test_a_breakdown_of_one_event_type_counts_only_its_events(reporting, stored):
    stored([*TRAFFIC, visit(event_type="signup", user_agent=CHROME, props={"plan": "pro"})])
    body = reporting.get(f"/stats/breakdown?{DAY}&by=prop:plan&event_type=signup").get_json()
    assert body["results"] == [{"value": "pro", "views": 1}]
    exact = reporting.get(f"/stats/aggregated?{DAY}&by=prop:plan&event_type=signup").get_json()
    assert exact["results"] == body["results"]


def test_the_values_beyond_a_rollups_cap_are_counted_apart(reporting, stored):
    caps = Caps(paths=10, event_types=4, dimension_values=2, prop_keys=1)
    stored([visit(country=code) for code in ["DE", "DE", "FR", "US", "IT"]], caps)
    stored([visit(props={"a": "1"}), visit(props={"b": "2"}), visit(props={"b": "3", "a": "4"})], caps)
    countries = reporting.get(f"/stats/breakdown?{DAY}&by=country").get_json()
    assert (countries["total"], countries["results"], countries["other"]) == (
        2,
        [{"value": "DE", "views": 2}, {"value": "FR", "views": 1}],
        {"views": 2},
    )
    kept = reporting.get(f"/stats/breakdown?{DAY}&by=prop:a").get_json()
    assert (kept["results"], kept["other"]) == (
        [{"value": "1", "views": 1}, {"value": "4", "views": 1}],
        {"views": 2},
    )
    beyond = reporting.get(f"/stats/breakdown?{DAY}&by=prop:b").get_json()
    assert (beyond["results"], beyond["other"]) == ([], {"views": 2})
    exact = reporting.get(f"/stats/aggregated?{DAY}&by=prop:b").get_json()
    assert exact["results"] == [{"value": "2", "views": 1}, {"value": "3", "views": 1}]


@pytest.mark.parametrize("by", ["prop:", "nonsense", "user_agent"])
def test_a_breakdown_by_what_no_event_holds_is_refused(reporting, by):
    response = reporting.get(f"/stats/breakdown?{DAY}&by={by}")
    assert response.status_code == 400
    assert response.get_json()["errors"].keys() == {"by"}
