"""Segment's `POST /v1/batch`, `/v1/track` and `/v1/page`: a site's server key as the write
key, Segment's messages mapped onto our events, Segment's answers."""

import base64
import uuid
from dataclasses import replace

import pytest

from app import create_app
from app.access import keys
from app.ingestion import bots
from app.ingestion.segment_body import event_id
from app.store import events as event_store
from app.store import sites

WHEN = "2026-12-07T10:00:00.000+00:00"


@pytest.fixture
def write_key(db):
    sites.save_site(db, "shop", ["shop.test"])
    return keys.create_key(db, "shop", sites.SERVER).secret


@pytest.fixture
def keyed(settings, db, counter_store, write_key, monkeypatch):
    app = create_app("ingestion", replace(settings, auth_mode="keys"))
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
    yield app.test_client()
    app.extensions["site_registry"].stop()


def basic(key):
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def stored(db):
    return list(db[event_store.EVENTS].find({}, {"_id": 0}).sort("timestamp", 1))


def track(**fields):
    return {
        "type": "track",
        "event": "Signed Up",
        "userId": "user-1",
        "properties": {"plan": "pro"},
        "timestamp": WHEN,
        "messageId": str(uuid.uuid4()),
        **fields,
    }


def test_a_batch_is_stored_for_the_site_of_the_write_key(keyed, db, write_key):
    page = {
        "type": "page",
        "anonymousId": "anon-1",
        "name": "Pricing",
        "properties": {
            "url": "https://shop.test/pricing?x=1",
            "referrer": "https://search.test/",
            "title": "P",
        },
        "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"},
        "timestamp": "2026-12-07T10:00:01.000+00:00",
        "messageId": "not-a-uuid-7",
    }
    identify = {"type": "identify", "userId": "user-1", "traits": {"plan": "pro"}, "timestamp": WHEN}
    response = keyed.post("/v1/batch", json={"batch": [track(), page, identify]}, headers=basic(write_key))
    assert response.status_code == 200
    assert response.get_json() == {"success": True}
    signup, view = stored(db)
    assert (signup["site_id"], signup["event_type"], signup["user_id"]) == ("shop", "Signed Up", "user-1")
    assert (view["event_type"], view["path"], view["user_id"]) == ("page_view", "/pricing", "anon-1")
    assert view["event_id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, "shop\x1fnot-a-uuid-7"))


def test_a_message_sent_again_is_stored_once(keyed, db, write_key):
    message = track()
    for path in ("/v1/track", "/v1/batch"):
        body = message if path == "/v1/track" else {"batch": [message]}
        assert keyed.post(path, json=body, headers=basic(write_key)).status_code == 200
    assert len(stored(db)) == 1


def test_a_page_call_takes_its_page_from_the_context_when_its_properties_lack_it(keyed, db, write_key):
    body = {
        "userId": "user-1",
        "context": {"page": {"path": "/docs", "title": "Docs"}},
        "timestamp": WHEN,
    }
    assert keyed.post("/v1/page", json=body, headers=basic(write_key)).status_code == 200
    [view] = stored(db)
    assert (view["event_type"], view["path"]) == ("page_view", "/docs")


def test_a_missing_or_unknown_write_key_is_segments_401(keyed, db):
    candidates: list[dict[str, str]] = [{}, basic("sk_nobody")]
    for headers in candidates:
        response = keyed.post("/v1/batch", json={"batch": [track()]}, headers=headers)
        assert response.status_code == 401
        body = response.get_json()
        assert body["code"] == "unauthorized"
        assert body["message"]
    assert stored(db) == []


def test_invalid_messages_are_reported_by_index_and_the_valid_ones_stored(keyed, db, write_key):
    bad = track(event=None, properties={"nested": {"no": 1}})
    response = keyed.post("/v1/batch", json={"batch": [bad, track()]}, headers=basic(write_key))
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    assert list(body["errors"]) == ["0"]
    assert len(stored(db)) == 1
    response = keyed.post("/v1/batch", json={"batch": [bad]}, headers=basic(write_key))
    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_request"


def test_malformed_json_is_segments_400(keyed, write_key):
    response = keyed.post(
        "/v1/batch", data="{", headers={**basic(write_key), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert set(response.get_json()) >= {"code", "message"}


def test_a_message_id_that_is_a_uuid_is_the_event_id():
    message_id = str(uuid.uuid4())
    assert event_id("shop", message_id) == message_id
    assert event_id("shop", "abc") == event_id("shop", "abc") != event_id("blog", "abc")


def test_a_visitor_a_crawler_is_dropped_answered_as_accepted_and_counted(keyed, db, counter_store, write_key):
    crawler = {"userAgent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    response = keyed.post(
        "/v1/batch", json={"batch": [track(context=crawler), track()]}, headers=basic(write_key)
    )
    assert response.status_code == 200
    assert response.get_json() == {"success": True}
    assert len(stored(db)) == 1
    assert bots.dropped_totals(counter_store)["crawler"] == 1


def test_the_anonymous_visitor_is_named_by_the_visitor_the_sdk_names(keyed, db, write_key):
    """Without userId or anonymousId a server's event names its visitor by context.ip and
    context.userAgent, never by the sending server."""
    context = {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
    body = {"event": "Signed Up", "timestamp": WHEN, "context": context}
    for ip in ("203.0.113.9", "203.0.113.9", "198.51.100.4"):
        keyed.post("/v1/track", json={**body, "context": {**context, "ip": ip}}, headers=basic(write_key))
    first, again, other = stored(db)
    assert first["visitor_id"] == again["visitor_id"] != other["visitor_id"]


def test_nested_properties_are_kept_as_json_text_and_the_event_stored(keyed, db, write_key):
    """Segment's e-commerce spec sends `products: [...]`: refused by the props' bounds, the
    message was answered `success` (so the SDK never sent it again) and lost."""
    products = [{"product_id": "p-1", "price": 19.5}, {"product_id": "p-2", "price": 5}]
    huge = {"notes": "x" * 3000}
    properties = {"order_id": "o-1", "products": products, "extra": huge}
    response = keyed.post(
        "/v1/track", json=track(event="Order Completed", properties=properties), headers=basic(write_key)
    )
    assert response.get_json() == {"success": True}
    (order,) = stored(db)
    assert order["event_type"] == "Order Completed"
    assert order["props"] == {
        "order_id": "o-1",
        "products": '[{"product_id":"p-1","price":19.5},{"product_id":"p-2","price":5}]',
    }
