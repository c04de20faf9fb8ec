"""Filters and `POST /api/v2/query` through the real ingestion service, worker, compactor and
MongoDB server: filtered answers equal a brute-force count of the stored events, the query API
equals the `/stats` endpoints, and neither counts, nor answers for, another site."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests

from tests.integration.client import TIMEOUT, wait_for_views
from tests.unit.reporting.test_filters import CASES, brute_force, traffic, users, value
from tests.unit.reporting.test_query_api import RANGE, plausible_valid
from tools.factories import new_site_id


def period(site_id: str) -> dict[str, str]:
    return {"site_id": site_id, "start": RANGE[0], "end": RANGE[1]}


def get(url: str, path: str, **params: Any) -> dict[str, Any]:
    response = requests.get(f"{url}{path}", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def query(url: str, key: str | None = None, **request: Any) -> requests.Response:
    plausible_valid(request)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{url}/api/v2/query", json=request, headers=headers, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def sites(pipeline: dict[str, str]) -> tuple[str, str]:
    """Two sites' varied traffic of two days, stored and counted: the second's a decoy."""
    site, other = new_site_id(), new_site_id()
    for site_id, seed in ((site, 29), (other, 1)):
        events = traffic(site_id=site_id, count=200, seed=seed)
        response = requests.post(f"{pipeline['ingestion']}/events", json={"events": events}, timeout=TIMEOUT)
        assert response.json()["accepted"] == len(events)
    for site_id, seed in ((site, 29), (other, 1)):
        on_15th = sum(
            e["timestamp"].startswith("2025-11-15") for e in traffic(site_id=site_id, count=200, seed=seed)
        )
        wait_for_views(pipeline["reporting"], site_id, "2025-11-15", on_15th)
    return site, other


@pytest.mark.parametrize(("filters", "conditions"), CASES)
def test_filtered_stats_equal_a_brute_force_count_of_the_stored_events(
    pipeline, db, sites, filters, conditions
):
    site, _ = sites
    expected = brute_force(db, site, conditions)
    body = get(pipeline["reporting"], "/stats", **period(site), filters=filters, limit=100)
    assert (body["total_views"], body["unique_users"], body["from"]) == (
        len(expected),
        users(expected),
        "events",
    )
    paths = Counter(event["path"] for event in expected if event.get("path"))
    assert {row["path"]: row["views"] for row in body["top_paths"]} == paths
    exact = get(pipeline["reporting"], "/stats/aggregated", **period(site), filters=filters, limit=100)
    assert (exact["total_views"], exact["unique_users"]) == (len(expected), users(expected))


def test_a_filtered_breakdown_and_timeseries_count_as_the_brute_force_does(pipeline, db, sites):
    site, _ = sites
    filters, conditions = CASES[4]
    expected = brute_force(db, site, conditions)
    body = get(
        pipeline["reporting"], "/stats/breakdown", **period(site), by="path", filters=filters, limit=100
    )
    assert {row["value"]: row["views"] for row in body["results"]} == Counter(
        v for event in expected if (v := value(event, "path"))
    )
    series = get(pipeline["reporting"], "/stats/timeseries", **period(site), filters=filters)["series"]
    days = Counter(f"{event['timestamp']:%Y-%m-%d}" for event in expected)
    assert {point["start"]: point["views"] for point in series} == {day: days[day] for day in RANGE}


def test_the_query_api_equals_the_stats_endpoints(pipeline, sites):
    site, _ = sites
    url = pipeline["reporting"]
    stats = get(url, "/stats", **period(site))
    body = query(url, site_id=site, metrics=["visitors", "events"], date_range=RANGE).json()
    assert body["results"] == [{"metrics": [stats["unique_users"], stats["total_views"]], "dimensions": []}]
    breakdown = get(url, "/stats/breakdown", **period(site), by="source", limit=100)["results"]
    body = query(url, site_id=site, metrics=["events"], date_range=RANGE, dimensions=["visit:source"]).json()
    assert [(row["dimensions"][0], row["metrics"][0]) for row in body["results"]] == [
        (row["value"], row["views"]) for row in breakdown
    ]
    series = get(url, "/stats/timeseries", **period(site), interval="hour")["series"]
    body = query(
        url, site_id=site, metrics=["visitors", "events"], date_range=RANGE, dimensions=["time:hour"]
    ).json()
    assert [row["metrics"] for row in body["results"]] == [
        [point["unique_users"], point["views"]] for point in series if point["views"]
    ]
    filtered = get(url, "/stats", **period(site), filters="source!=Google;event:page~/blog")
    body = query(
        url,
        site_id=site,
        metrics=["visitors", "events"],
        date_range=RANGE,
        filters=[["is_not", "visit:source", ["Google"]], ["contains", "event:page", ["/blog"]]],
    ).json()
    assert body["results"][0]["metrics"] == [filtered["unique_users"], filtered["total_views"]]
    assert body["meta"]["from"] == "events"


def test_the_query_api_refuses_what_it_does_not_support_with_a_400_naming_it(pipeline, sites):
    site, _ = sites
    response = query(pipeline["reporting"], site_id=site, metrics=["bounce_rate"], date_range="7d")
    assert response.status_code == 400
    assert response.json()["errors"] == {"metrics": [response.json()["message"]]}
    assert "bounce_rate" in response.json()["message"]


def test_a_sites_key_answers_the_query_api_for_its_site_only(keyed):
    request = {"metrics": ["visitors"], "date_range": "day"}
    assert query(keyed.reporting, keyed.shop_key, site_id=keyed.shop, **request).status_code == 200
    response = query(keyed.reporting, keyed.blog_key, site_id=keyed.shop, **request)
    assert response.status_code == 403
    assert response.json()["message"] == f"This key does not give access to site {keyed.shop}"
    assert query(keyed.reporting, None, site_id=keyed.shop, **request).status_code == 401
