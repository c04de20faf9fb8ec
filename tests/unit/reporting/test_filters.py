"""`filters` on `/stats`, `/stats/timeseries`, `/stats/breakdown` and `/stats/aggregated`:
exact against a brute-force count of the stored events, each operator, bad filters refused."""

import random
import uuid
from collections import Counter
from dataclasses import replace
from urllib.parse import quote

import pytest

from app import create_app
from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.rollups.caps import Caps
from tasks.persist import store_batch
from tests.unit.reporting.test_dimension_breakdowns import CHROME, IPHONE
from tools.factories import make_event

SITE = "site-abc-123"
PERIOD = f"site_id={SITE}&start=2025-11-14&end=2025-11-15"
REFERRERS = [
    None,
    "https://www.google.de/",
    "https://www.google.com/",
    "https://t.co/x",
    "https://news.ycombinator.com/",
]


def traffic(site_id=SITE, count=240, seed=29):
    """Random page views and signups of two days, varied in every dimension."""
    rng = random.Random(seed)
    messages = []
    for _ in range(count):
        props = rng.choice([None, {"plan": "pro"}, {"plan": "free"}, {"plan": "pro", "trial": True}])
        clock = f"{rng.randrange(24):02d}:{rng.randrange(60):02d}"
        messages.append(
            make_event(
                site_id=site_id,
                event_type=rng.choice(["page_view", "page_view", "page_view", "signup"]),
                path=rng.choice(["/", "/pricing", "/blog/a", "/blog/b", "/admin", None]),
                user_id=rng.choice([None, *(f"user-{n}" for n in range(30))]),
                timestamp=f"2025-11-{rng.choice([14, 15])}T{clock}:00Z",
                referrer=rng.choice(REFERRERS),
                user_agent=rng.choice([CHROME, IPHONE]),
                country=rng.choice([None, "DE", "US", "FR"]),
                props=props,
            )
        )
    return messages


def value(event, dimension):
    """A stored event's value of a dimension, written out again for the brute force."""
    if dimension.startswith("prop:"):
        prop = (event.get("props") or {}).get(dimension[5:])
        return None if prop is None else {True: "true", False: "false"}.get(prop, prop)
    return event.get(dimension) or None


def brute_force(db, site_id, conditions):
    """The stored events of the site that meet every (dimension, operator, values)."""
    tests = {
        "is": lambda v, values: v is not None and v in values,
        "is_not": lambda v, values: v is None or v not in values,
        "contains": lambda v, values: v is not None and any(x in v for x in values),
    }
    return [
        event
        for event in db.events.find({"site_id": site_id})
        if all(tests[op](value(event, dim), values) for dim, op, values in conditions)
    ]


def users(events):
    return len({event.get("user_id") or event.get("visitor_id") for event in events} - {None})


BREAKDOWNS = ["path", "source", "browser", "country", "event_type", "prop:plan"]
CASES = [
    ("source==Google", [("source", "is", ["Google"])]),
    ("source!=Google", [("source", "is_not", ["Google"])]),
    ("path~/blog", [("path", "contains", ["/blog"])]),
    ("path==/|/pricing", [("path", "is", ["/", "/pricing"])]),
    ("browser==Chrome;country!=DE", [("browser", "is", ["Chrome"]), ("country", "is_not", ["DE"])]),
    ("event_type==signup;prop:plan==pro", [("event_type", "is", ["signup"]), ("prop:plan", "is", ["pro"])]),
    ("prop:trial==true", [("prop:trial", "is", ["true"])]),
    (
        "device==mobile;os~iO;path!=/admin",
        [("device", "is", ["mobile"]), ("os", "contains", ["iO"]), ("path", "is_not", ["/admin"])],
    ),
    ("visit:source==X;event:page~blog", [("source", "is", ["X"]), ("path", "contains", ["blog"])]),
    (
        "event:props:plan~fr;event:name==page_view",
        [("prop:plan", "contains", ["fr"]), ("event_type", "is", ["page_view"])],
    ),
]


@pytest.mark.parametrize(("filters", "conditions"), CASES)
def test_filtered_stats_equal_a_brute_force_count_of_the_stored_events(
    reporting, store, db, filters, conditions
):
    store(traffic())
    expected = brute_force(db, SITE, conditions)
    assert expected, "each case matches some events"
    body = reporting.get(f"/stats?{PERIOD}&filters={quote(filters)}&limit=100").get_json()
    paths = Counter(event["path"] for event in expected if event.get("path"))
    assert (body["total_views"], body["unique_users"]) == (len(expected), users(expected))
    assert {row["path"]: row["views"] for row in body["top_paths"]} == paths
    assert (body["filters"], body["from"]) == (filters, "events")
    exact = reporting.get(f"/stats/aggregated?{PERIOD}&filters={quote(filters)}&limit=100").get_json()
    assert {k: exact[k] for k in ("total_views", "unique_users", "top_paths")} == {
        k: body[k] for k in ("total_views", "unique_users", "top_paths")
    }


@pytest.mark.parametrize(("filters", "conditions"), CASES[:4])
def test_a_filtered_timeseries_counts_each_bucket_as_the_brute_force_does(
    reporting, store, db, filters, conditions
):
    store(traffic())
    expected = brute_force(db, SITE, conditions)
    body = reporting.get(f"/stats/timeseries?{PERIOD}&interval=hour&filters={quote(filters)}").get_json()
    by_hour: dict[str, list[dict]] = {}
    for event in expected:
        by_hour.setdefault(event["timestamp"].strftime("%Y-%m-%dT%H:00:00+00:00"), []).append(event)
    assert len(body["series"]) == 48
    for point in body["series"]:
        bucket = by_hour.get(point["start"], [])
        assert (point["views"], point["unique_users"]) == (len(bucket), users(bucket)), point["start"]
    assert body["from"] == "events"


def answerer(by, conditions):
    """Filters only on the breakdown's own dimension choose among the rollups' rows."""
    return "rollups" if {dimension for dimension, _, _ in conditions} == {by} else "events"


@pytest.mark.parametrize(
    ("by", "filters", "conditions", "source"),
    [
        *((by, *CASES[n], answerer(by, CASES[n][1])) for n in (1, 4, 5) for by in BREAKDOWNS),
        ("source", "source==Google|X", [("source", "is", ["Google", "X"])], "rollups"),
        ("source", "source!=Google", [("source", "is_not", ["Google"])], "rollups"),
        ("path", "path~blog", [("path", "contains", ["blog"])], "rollups"),
        ("prop:plan", "event:props:plan==pro", [("prop:plan", "is", ["pro"])], "rollups"),
    ],
)
def test_a_filtered_breakdown_counts_each_value_as_the_brute_force_does(
    reporting, store, db, by, filters, conditions, source
):
    store(traffic())
    counts = Counter(v for event in brute_force(db, SITE, conditions) if (v := value(event, by)) is not None)
    question = f"{PERIOD}&by={by}&limit=100&filters={quote(filters)}"
    body = reporting.get(f"/stats/breakdown?{question}").get_json()
    assert {row["value"]: row["views"] for row in body["results"]} == counts
    assert (body["total"], body["from"]) == (len(counts), source)
    assert reporting.get(f"/stats/aggregated?{question}").get_json()["results"] == body["results"]


@pytest.mark.parametrize("endpoint", ["/stats?", "/stats/timeseries?", "/stats/breakdown?by=path&"])
def test_a_filter_on_one_event_type_alone_is_answered_from_the_rollups(reporting, store, endpoint):
    store(traffic())
    filtered = reporting.get(f"{endpoint}{PERIOD}&filters=event:name==signup").get_json()
    asked = reporting.get(f"{endpoint}{PERIOD}&event_type=signup").get_json()
    assert filtered.pop("from") == "rollups"
    assert filtered.pop("filters") == "event:name==signup"
    assert asked.pop("event_type") == "signup"
    assert filtered == asked


def test_a_filter_on_an_event_type_beyond_the_rollups_caps_is_counted_from_the_events(
    reporting, db, counter_store
):
    """With one event type kept per rollup, the signups may lie beyond the caps: exact still."""
    messages = [to_message(event) for event in traffic()]
    store_batch(db, counter_store, uuid.uuid4().hex, messages)
    compactor.compact(db, counter_store, Caps(paths=1000, event_types=1))
    body = reporting.get(f"/stats?{PERIOD}&filters=event_type==signup").get_json()
    expected = brute_force(db, SITE, [("event_type", "is", ["signup"])])
    assert (body["total_views"], body["unique_users"], body["from"]) == (
        len(expected),
        users(expected),
        "events",
    )


def test_an_answer_without_filters_is_as_it_always_was(reporting, store):
    store(traffic())
    body = reporting.get(f"/stats?{PERIOD}").get_json()
    assert "from" not in body
    assert "filters" not in body


def test_each_filter_is_a_question_of_its_own_in_the_cache(reporting, store):
    store(traffic())
    google = reporting.get(f"/stats?{PERIOD}&filters=source==Google").get_json()
    x = reporting.get(f"/stats?{PERIOD}&filters=source==X").get_json()
    assert google["total_views"] != x["total_views"]


def test_a_value_may_hold_an_escaped_separator(reporting, store, db):
    store([make_event(path="/a;b|c"), make_event(path="/a")])
    escaped = quote(r"path==/a\;b\|c")
    body = reporting.get(f"/stats?site_id={SITE}&date=2025-11-15&filters={escaped}").get_json()
    assert body["total_views"] == 1


@pytest.mark.parametrize(
    ("filters", "says"),
    [
        ("planet==Mars", "Unknown dimension 'planet'"),
        ("source", "has no operator"),
        ("source==", "every value must be non-empty"),
        ("visit:city==Berlin", "Unknown dimension 'visit:city'"),
        ("prop:==x", "Unknown dimension 'prop:'"),
        (";", "No filter given"),
    ],
)
@pytest.mark.parametrize(
    "endpoint", ["/stats?", "/stats/timeseries?", "/stats/breakdown?by=path&", "/stats/aggregated?"]
)
def test_a_bad_filter_is_a_400_naming_it(reporting, endpoint, filters, says):
    response = reporting.get(f"{endpoint}{PERIOD}&filters={quote(filters)}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"] == "Invalid parameters: filters"
    assert says in body["errors"]["filters"][0]


@pytest.mark.parametrize("by", ["entry_page", "exit_page"])
@pytest.mark.parametrize("endpoint", ["/stats/breakdown", "/stats/aggregated"])
def test_a_breakdown_by_visits_refuses_filters_naming_them(reporting, endpoint, by):
    response = reporting.get(f"{endpoint}?{PERIOD}&by={by}&filters=source==Google")
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"filters": [f"Filters do not apply to a breakdown by {by}."]}


def test_the_stats_export_refuses_filters_rather_than_ignoring_them(reporting):
    response = reporting.get(f"/stats/export?{PERIOD}&filters=source==Google")
    assert response.status_code == 400
    assert response.get_json()["errors"] == {
        "filters": ["The export does not take filters: it counts every event."]
    }


@pytest.fixture
def bounded(settings, db, counter_store):
    """A reporting service that reads at most 50 events for a filtered question."""
    return create_app("reporting", replace(settings, reporting_filter_max_events=50)).test_client()


def test_a_period_with_more_events_than_a_filter_may_read_is_refused_naming_filters(bounded, store):
    store(traffic(count=51))
    response = bounded.get(f"/stats?{PERIOD}&filters=source==Google")
    assert response.status_code == 400
    assert "more than 50 events" in response.get_json()["message"]
    assert list(response.get_json()["errors"]) == ["filters"]


def test_events_the_rollups_do_not_count_yet_are_bounded_too(bounded, db, counter_store):
    messages = [to_message(event) for event in traffic(count=51)]
    store_batch(db, counter_store, uuid.uuid4().hex, messages)  # not yet compacted
    response = bounded.get(f"/stats?{PERIOD}&filters=source==Google")
    assert response.status_code == 400
    assert list(response.get_json()["errors"]) == ["filters"]


def test_one_sites_filter_never_reads_another_sites_events(bounded, store, db):
    store(traffic(site_id="site-other", count=400, seed=1))
    store(traffic(count=40))
    # Under the bound of 50 only if the other site's 400 events are never read.
    body = bounded.get(f"/stats?{PERIOD}&filters=source!=Google").get_json()
    expected = brute_force(db, SITE, [("source", "is_not", ["Google"])])
    assert (body["total_views"], body["unique_users"]) == (len(expected), users(expected))
