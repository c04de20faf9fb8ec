"""A site-day with more distinct long paths than a rollup keeps: /stats still answers, with
the views it could not keep by path counted apart; a site under the caps stays exact.
The session runs the worker with small caps (services.py's ROLLUP_CAPS)."""

import json
from collections import Counter

import requests

from tests.integration.client import TIMEOUT, get_stats, wait_for_views
from tests.integration.services import ROLLUP_CAPS
from tools.factories import make_event, new_site_id

DAY = "2025-11-15"
MAX_PATHS = int(ROLLUP_CAPS["ROLLUP_MAX_PATHS"])
MAX_EVENT_TYPES = int(ROLLUP_CAPS["ROLLUP_MAX_EVENT_TYPES"])
# Events per POST /events: about 2 KiB each, well within MAX_BATCH_BYTES (1 MiB).
PER_REQUEST = 100


def long_path(number: int) -> str:
    return f"/{number:05d}/" + "x" * 2000


def post_all(ingestion_url, events):
    for start in range(0, len(events), PER_REQUEST):
        body = json.dumps(events[start : start + PER_REQUEST])
        response = requests.post(
            f"{ingestion_url}/events",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text


def ask(reporting_url, endpoint, **params):
    response = requests.get(f"{reporting_url}{endpoint}", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_day_beyond_the_path_cap_answers_with_the_views_it_set_apart(pipeline):
    site_id = new_site_id()
    views = {long_path(n): 1 + n % 3 for n in range(MAX_PATHS + 50)}
    events = [
        make_event(
            site_id=site_id, path=path, user_id=f"u{n % 40}", event_type=f"kind-{n % (MAX_EVENT_TYPES + 2)}"
        )
        for n, path in enumerate(path for path, count in views.items() for _ in range(count))
    ]
    events += [make_event(site_id=site_id, path=None, user_id="u0")]  # a view without a path
    post_all(pipeline["ingestion"], events)

    body = wait_for_views(pipeline["reporting"], site_id, DAY, len(events), timeout=120)
    exact = get_stats(pipeline["reporting"], site_id, DAY, "/stats/aggregated")
    assert body["total_views"] == exact["total_views"] == len(events)
    assert body["unique_users"] == exact["unique_users"] == 40
    kept = ask(pipeline["reporting"], "/stats/breakdown", site_id=site_id, date=DAY, by="path", limit=100)
    assert kept["total"] == MAX_PATHS
    assert all(row["views"] == views[row["value"]] for row in kept["results"])  # exact, each of them
    kept_views = sum(row["views"] for row in kept["results"])
    assert body["other_paths"] == kept["other"] == {"views": sum(views.values()) - kept_views}
    assert all(row["views"] == views[row["path"]] for row in body["top_paths"])
    kinds = ask(pipeline["reporting"], "/stats/breakdown", site_id=site_id, date=DAY, by="event_type")
    assert kinds["total"] == MAX_EVENT_TYPES
    assert sum(row["views"] for row in kinds["results"]) + kinds["other"]["views"] == len(events)
    # A question about a type the day's rollup did not keep says so, alike in every answer.
    not_kept = {f"kind-{n}" for n in range(MAX_EVENT_TYPES + 2)} - {row["value"] for row in kinds["results"]}
    for kind in not_kept:
        question = {"site_id": site_id, "date": DAY, "event_type": kind}
        stats = ask(pipeline["reporting"], "/stats", **question)
        series = ask(pipeline["reporting"], "/stats/timeseries", **question)
        by_path = ask(pipeline["reporting"], "/stats/breakdown", **question, by="path")
        assert (stats["total_views"], series["series"][0]["views"], by_path["results"]) == (0, 0, [])
        assert stats["other_event_types"] == series["other_event_types"] == by_path["other_event_types"]
        assert by_path["other_event_types"] == kinds["other"]
    health = ask(pipeline["reporting"], "/health/pipeline")
    assert health["rollups"]["set_aside"] == 0


def test_a_day_under_the_caps_is_exact_and_agrees_with_the_aggregation(pipeline):
    site_id = new_site_id()
    paths = Counter({long_path(n): 1 + n % 4 for n in range(MAX_PATHS // 2)})
    events = [
        make_event(site_id=site_id, path=path, user_id=f"u{n % 9}") for n, path in enumerate(paths.elements())
    ]
    post_all(pipeline["ingestion"], events)

    body = wait_for_views(pipeline["reporting"], site_id, DAY, len(events), timeout=120)
    assert body == get_stats(pipeline["reporting"], site_id, DAY, "/stats/aggregated")
    assert "other_paths" not in body
    assert body["top_paths"][0] == {"path": long_path(3), "views": 4}
