"""`POST /api/send`: Umami's collection endpoint, mapped onto our events, with Umami's answers."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app import create_app
from app.ingestion import bots
from app.store import events as event_store
from app.store import sites

WEBSITE = "50429a93-8479-4073-be80-d5d29c09c2ec"


@pytest.fixture
def keyed(settings, db, counter_store, monkeypatch):
    sites.save_site(db, "shop", ["shop.test"], umami_id=WEBSITE)
    app = create_app("ingestion", replace(settings, auth_mode="keys"))
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
    yield app.test_client()
    app.extensions["site_registry"].stop()


def send(client, payload, kind="event", **headers):
    return client.post("/api/send", json={"type": kind, "payload": payload}, headers=headers)


def stored(db):
    return list(db[event_store.EVENTS].find({}, {"_id": 0}))


def test_a_page_view_is_stored_for_the_site_of_the_website_id(keyed, db):
    response = send(
        keyed,
        {
            "website": WEBSITE,
            "hostname": "shop.test",
            "url": "/pricing?plan=pro",
            "referrer": "https://search.test/?q=shop",
            "title": "Pricing",
            "screen": "1920x1080",
            "language": "en-GB",
        },
        Origin="https://shop.test",
    )
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    [event] = stored(db)
    assert event["site_id"] == "shop"
    assert event["event_type"] == "page_view"
    assert event["path"] == "/pricing"


def test_a_named_event_keeps_its_name_and_data(keyed, db):
    when = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    response = send(
        keyed,
        {"website": WEBSITE, "name": "signup", "data": {"plan": "pro"}, "timestamp": int(when.timestamp())},
    )
    assert response.status_code == 200
    [event] = stored(db)
    assert event["event_type"] == "signup"
    assert event["timestamp"].replace(tzinfo=UTC) == when
    assert "path" not in event or event["path"] is None


def test_an_identify_is_answered_and_stores_no_event(keyed, db):
    assert send(keyed, {"website": WEBSITE, "data": {"plan": "pro"}}, kind="identify").status_code == 200
    assert stored(db) == []


def test_an_unknown_website_is_umamis_400(keyed, db):
    response = send(keyed, {"website": "0f6a6bb1-7d36-4c55-9a7e-d5c1f1a0e0b2", "url": "/"})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": {"message": "Website not found.", "code": "bad-request", "status": 400}
    }


def test_a_malformed_payload_is_umamis_400_naming_the_field(keyed, db):
    response = send(keyed, {"website": "not-a-uuid"}, kind="pageview")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "bad-request"
    assert error["status"] == 400
    assert set(error["errors"]) == {"type", "payload"}
    assert stored(db) == []


def test_a_page_of_a_foreign_host_is_umamis_403(keyed, db):
    response = send(keyed, {"website": WEBSITE, "url": "/"}, Origin="https://foreign.test")
    assert response.status_code == 403
    body = response.get_json()
    assert body["error"]["code"] == "forbidden"
    assert "foreign.test" in body["error"]["message"]
    assert stored(db) == []


def test_in_open_mode_the_website_id_is_the_site_id(ingestion, db):
    assert send(ingestion, {"website": WEBSITE, "url": "https://shop.test/"}).status_code == 200
    assert [event["site_id"] for event in stored(db)] == [WEBSITE]


def test_a_headless_browser_is_dropped_answered_as_umami_answers_and_counted(keyed, db, counter_store):
    headless = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36"
    )
    page = {"Origin": "https://shop.test", "User-Agent": headless}
    response = send(keyed, {"website": WEBSITE, "url": "/"}, **page)
    assert response.status_code == 200
    assert response.get_json() == {"ok": True}
    assert stored(db) == []
    assert bots.dropped_totals(counter_store)["headless"] == 1


def test_a_page_view_without_user_id_gets_the_visitor_id(keyed, db):
    browser = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    for _ in range(2):
        send(keyed, {"website": WEBSITE, "url": "/"}, Origin="https://shop.test", **{"User-Agent": browser})
    first, again = stored(db)
    assert first["visitor_id"] == again["visitor_id"]
    assert first["user_id"] is None


def test_a_client_over_its_rate_gets_umamis_429_with_the_rate_limit_headers(settings, db, counter_store):
    app = create_app("ingestion", replace(settings, ingestion_rate_limit="1/minute"))
    client = app.test_client()
    try:
        assert send(client, {"website": "not-a-uuid"}).status_code == 400
        # Refused for what it carries: the request still counts, and this one is over the rate.
        response = send(client, {"website": "not-a-uuid"})
        assert response.status_code == 429
        assert response.get_json()["error"]["code"] == "too-many-requests"
        assert response.headers["Retry-After"]
    finally:
        local = app.extensions["ingestion_limits"].local
        if local is not None:
            local.stop()


def test_a_crawler_meets_the_address_rate_limit_as_a_person_does(settings, db, counter_store, monkeypatch):
    """Bots' events went to the counts alone, past every limit: a crawler's user agent was a
    free pass to write to Redis (#28 review)."""
    sites.save_site(db, "shop", ["shop.test"], umami_id=WEBSITE)
    app = create_app("ingestion", replace(settings, auth_mode="keys", ingestion_rate_limit="2/minute"))
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
    client = app.test_client()
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    payload = {"website": WEBSITE, "hostname": "shop.test", "url": "/"}
    headers = {"Origin": "https://shop.test", "User-Agent": googlebot}
    try:
        statuses = [
            client.post("/api/send", json={"type": "event", "payload": payload}, headers=headers).status_code
            for _ in range(5)
        ]
    finally:
        app.extensions["site_registry"].stop()
    assert statuses == [200, 200, 429, 429, 429]
