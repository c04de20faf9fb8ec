"""Batches, beacons, gzip and CORS over HTTP, through gunicorn to /stats."""

import gzip
import json

import requests

from app.ingestion.schemas import MAX_BATCH_EVENTS
from app.settings import Settings
from tests.compression import MIB, gzip_bomb
from tests.integration.client import TIMEOUT, wait_for_views
from tools.factories import make_event, new_site_id

DAY = "2025-11-15"


def post(url, data, content_type="application/json", **headers):
    headers = {"Content-Type": content_type, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return requests.post(url, data=data, headers=headers, timeout=TIMEOUT)


def events_of(site_id, count):
    return [make_event(site_id=site_id, path=f"/p{index % 7}", user_id=f"u{index}") for index in range(count)]


def test_a_batch_with_an_invalid_event_reaches_stats_without_it(pipeline):
    site_id = new_site_id()
    events = events_of(site_id, 100)
    events[42] = make_event(site_id=site_id, timestamp="2025-02-30T10:00:00Z")
    response = post(f"{pipeline['ingestion']}/events", json.dumps({"events": events}))
    assert response.status_code == 200
    assert response.json() == {
        "status": "accepted",
        "accepted": 99,
        "rejected": 1,
        "errors": {"42": {"timestamp": ["Not a valid datetime."]}},
    }
    stats = wait_for_views(pipeline["reporting"], site_id, DAY, 99)
    assert (stats["total_views"], stats["unique_users"]) == (99, 99)


def test_a_gzip_text_plain_beacon_batch_reaches_stats(pipeline):
    site_id = new_site_id()
    body = gzip.compress(json.dumps(events_of(site_id, 30)).encode())
    response = post(
        f"{pipeline['ingestion']}/events", body, "text/plain;charset=UTF-8", Content_Encoding="gzip"
    )
    assert response.json()["accepted"] == 30
    assert wait_for_views(pipeline["reporting"], site_id, DAY, 30)["total_views"] == 30


def test_a_text_plain_beacon_event_reaches_stats(pipeline):
    site_id = new_site_id()
    response = post(f"{pipeline['ingestion']}/event", json.dumps(make_event(site_id=site_id)), "text/plain")
    assert response.json() == {"status": "accepted"}
    assert wait_for_views(pipeline["reporting"], site_id, DAY, 1)["top_paths"] == [
        {"path": "/pricing", "views": 1}
    ]


def test_batch_limits_are_enforced_over_http(ingestion_url):
    too_many = post(f"{ingestion_url}/events", json.dumps([make_event()] * (MAX_BATCH_EVENTS + 1)))
    assert (too_many.status_code, too_many.json()["status"]) == (400, "error")
    body = json.dumps([make_event(path="/" + "x" * 2040)] * 490)
    assert len(body) > Settings().max_batch_bytes
    too_large = post(f"{ingestion_url}/events", body)
    assert (too_large.status_code, too_large.json()["status"]) == (413, "error")
    no_valid = post(f"{ingestion_url}/events", json.dumps([{"site_id": "only"}]))
    assert no_valid.status_code == 400
    assert no_valid.json()["errors"]["0"].keys() == {"event_type", "timestamp"}


def test_a_gzip_bomb_is_413_and_the_service_keeps_answering(ingestion_url):
    response = post(f"{ingestion_url}/events", gzip_bomb(128 * MIB), Content_Encoding="gzip")
    assert response.status_code == 413
    assert post(f"{ingestion_url}/event", json.dumps(make_event())).status_code == 200


def test_malformed_gzip_is_400_and_a_form_is_415(ingestion_url):
    assert post(f"{ingestion_url}/event", b"\x1f\x8bnot really", Content_Encoding="gzip").status_code == 400
    assert post(f"{ingestion_url}/events", "[]", "application/x-www-form-urlencoded").status_code == 415


def test_a_cors_preflight_is_answered_by_gunicorn(ingestion_url):
    response = requests.options(
        f"{ingestion_url}/events",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
