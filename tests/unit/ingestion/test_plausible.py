"""`POST /api/event`: Plausible's Events API mapped onto our events, with Plausible's answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from pymongo.database import Database

from app import create_app
from app.ingestion import bots
from app.settings import Settings
from app.store import events as event_store
from app.store import sites

PAGE = "https://shop.test/pricing?plan=pro#faq"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def post(client: FlaskClient, body: Any, content_type: str = "text/plain", **headers: str) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/api/event", data=data, content_type=content_type, headers=headers)


def post_ours(client: FlaskClient, body: Any, **headers: str) -> Any:
    return client.post("/event", data=json.dumps(body), content_type="application/json", headers=headers)


def stored(db: Database[Any]) -> list[dict[str, Any]]:
    return list(db[event_store.EVENTS].find({}, {"_id": 0, "created_at": 0, "updated_at": 0}))


def test_a_page_view_is_accepted_with_202_ok_and_stored_as_ours(ingestion: FlaskClient, db):
    response = post(ingestion, {"n": "pageview", "u": PAGE, "d": "shop.test", "r": "https://search.test/"})
    assert response.status_code == 202
    assert response.get_data(as_text=True) == "ok"
    assert "X-Plausible-Dropped" not in response.headers
    [event] = stored(db)
    assert event["site_id"] == "shop.test"
    assert event["event_type"] == "page_view"
    assert event["path"] == "/pricing"
    assert event["url"] == PAGE
    assert event["referrer"] == "https://search.test/"
    assert "props" not in event


def test_the_long_field_names_and_a_json_body_are_read_too(ingestion: FlaskClient, db):
    body = {"name": "Signup", "url": PAGE, "domain": "shop.test", "props": {"plan": "pro", "seats": 3}}
    assert post(ingestion, body, content_type="application/json").status_code == 202
    [event] = stored(db)
    assert (event["event_type"], event["props"]) == ("Signup", {"plan": "pro", "seats": 3})


def test_props_sent_as_json_text_are_read_and_filtered_as_plausible_does(ingestion: FlaskClient, db):
    props = {"plan": "pro", "empty": "", "none": None, "list": [1], "object": {"a": 1}, "ok": True}
    body = {"n": "Signup", "u": PAGE, "d": "shop.test", "p": json.dumps(props)}
    assert post(ingestion, body).status_code == 202
    assert stored(db)[0]["props"] == {"plan": "pro", "ok": True}


def test_with_hash_routing_the_fragment_is_part_of_the_path(ingestion: FlaskClient, db):
    assert post(ingestion, {"n": "pageview", "u": PAGE, "d": "shop.test", "h": 1}).status_code == 202
    assert stored(db)[0]["path"] == "/pricing#faq"


def test_without_a_domain_the_urls_host_names_the_site_without_www(ingestion: FlaskClient, db):
    body = {"n": "pageview", "u": "https://www.shop.test/"}
    assert post(ingestion, body).status_code == 202
    assert [event["site_id"] for event in stored(db)] == ["shop.test"]


def test_each_of_several_domains_gets_the_event(ingestion: FlaskClient, db):
    body = {"n": "pageview", "u": PAGE, "d": "shop.test, www.rollup.test"}
    assert post(ingestion, body).status_code == 202
    assert sorted(event["site_id"] for event in stored(db)) == ["rollup.test", "shop.test"]


def test_headers_that_name_no_visitor_well_do_not_fail_the_event(ingestion: FlaskClient, db):
    headers = {"X-Forwarded-For": "not-an-address", "User-Agent": "Mozilla/5.0 " + "x" * 2000}
    assert post(ingestion, {"n": "pageview", "u": PAGE, "d": "shop.test"}, **headers).status_code == 202
    [event] = stored(db)
    assert "ip" not in event


def test_a_bots_event_is_dropped_as_plausible_drops_it_and_counted(ingestion: FlaskClient, db, counter_store):
    headers = {"Origin": "https://shop.test", "User-Agent": GOOGLEBOT}
    response = post(ingestion, {"n": "pageview", "u": PAGE, "d": "shop.test"}, **headers)
    assert (response.status_code, response.get_data(as_text=True)) == (202, "ok")
    assert response.headers["X-Plausible-Dropped"] == "1"
    assert stored(db) == []
    today = datetime.now(UTC).date().isoformat()
    assert bots.dropped_on(counter_store, "shop.test", today)[bots.CRAWLER] == 1


def test_a_page_views_visitor_is_its_browsers_as_on_event(ingestion: FlaskClient, db):
    """Same address and user agent, same site: the same visitor id through either endpoint."""
    headers = {"Origin": "https://shop.test", "User-Agent": FIREFOX}
    assert post(ingestion, {"n": "pageview", "u": PAGE, "d": "shop.test"}, **headers).status_code == 202
    ours = {"site_id": "shop.test", "event_type": "page_view", "timestamp": datetime.now(UTC).isoformat()}
    assert post_ours(ingestion, ours, **headers).status_code == 200
    visitors = {event["visitor_id"] for event in stored(db)}
    assert len(visitors) == 1
    assert all(len(visitor) == 32 for visitor in visitors)


def test_a_server_names_its_visitor_by_user_agent_and_x_forwarded_for(ingestion: FlaskClient, db):
    """As Plausible's Events API asks of servers; believed here because AUTH_MODE is open."""
    body = {"n": "pageview", "u": PAGE, "d": "shop.test"}
    for address in ("203.0.113.7", "203.0.113.7", "198.51.100.9"):
        headers = {"User-Agent": FIREFOX, "X-Forwarded-For": f"{address}, 10.0.0.1"}
        assert post(ingestion, body, **headers).status_code == 202
    visitors = [event["visitor_id"] for event in stored(db)]
    assert len(visitors) == 3
    assert len(set(visitors)) == 2
    assert all("ip" not in event for event in stored(db))


def test_engagement_is_answered_and_not_stored(ingestion: FlaskClient, db):
    body = {"n": "engagement", "u": PAGE, "d": "shop.test", "sd": 80, "e": 4000}
    response = post(ingestion, body)
    assert (response.status_code, response.get_data(as_text=True)) == (202, "ok")
    assert stored(db) == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ("{not json", {"request": ["Unable to parse request body as json"]}),
        ("[1, 2]", {"request": ["Unable to parse request body as json"]}),
        ({"u": PAGE, "d": "shop.test"}, {"event_name": ["can't be blank"]}),
        ({"n": "pageview", "d": "shop.test"}, {"url": ["is required"]}),
        ({"n": "pageview", "u": 7, "d": "shop.test"}, {"url": ["must be a string"]}),
        ({"n": "pageview", "u": PAGE, "d": " "}, {"domain": ["can't be blank"]}),
        ({}, {"event_name": ["can't be blank"], "url": ["is required"], "domain": ["can't be blank"]}),
    ],
)
def test_a_request_plausible_cannot_use_gets_its_400(ingestion: FlaskClient, db, body, errors):
    response = post(ingestion, body)
    assert response.status_code == 400
    assert response.get_json() == {"errors": errors}
    assert stored(db) == []


def test_our_validation_is_answered_in_plausibles_shape_under_its_field_names(ingestion: FlaskClient, db):
    too_many = {f"key{number}": number for number in range(31)}
    response = post(ingestion, {"n": "x" * 65, "u": PAGE, "d": "shop.test", "p": too_many})
    assert response.status_code == 400
    errors = response.get_json()["errors"]
    assert set(errors) == {"event_name", "props"}
    assert stored(db) == []


def test_a_url_that_is_not_a_web_address_is_refused(ingestion: FlaskClient, db):
    response = post(ingestion, {"n": "pageview", "u": "http://[::1", "d": "shop.test"})
    assert response.status_code == 400
    assert set(response.get_json()["errors"]) == {"url"}


@pytest.fixture
def shop(settings: Settings, db, counter_store, monkeypatch) -> Iterator[FlaskClient]:
    """Ingestion with AUTH_MODE=keys and site `shop` registered with www.shop.test and
    shop.example."""
    sites.save_site(db, "shop", ["www.shop.test", "shop.example"])
    app = create_app("ingestion", replace(settings, auth_mode="keys"))
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
    app.extensions["site_registry"].refresh()
    yield app.test_client()
    app.extensions["site_registry"].stop()


@pytest.mark.parametrize("domain", ["shop.test", "www.shop.test", "shop.example"])
def test_with_keys_the_site_is_found_by_a_registered_domain(shop: FlaskClient, db, domain):
    response = post(shop, {"n": "pageview", "u": "https://www.shop.test/", "d": domain})
    assert response.status_code == 202
    assert [event["site_id"] for event in stored(db)] == ["shop"]


def test_an_unregistered_domain_is_dropped_as_plausible_drops_it(shop: FlaskClient, db):
    response = post(shop, {"n": "pageview", "u": "https://elsewhere.test/", "d": "elsewhere.test"})
    assert (response.status_code, response.get_data(as_text=True)) == (202, "ok")
    assert response.headers["X-Plausible-Dropped"] == "1"
    assert stored(db) == []


def test_a_page_not_on_the_sites_domains_is_dropped(shop: FlaskClient, db):
    body = {"n": "pageview", "u": "https://www.shop.test/", "d": "shop.test"}
    response = post(shop, body, Origin="https://foreign.test")
    assert response.status_code == 202
    assert response.headers["X-Plausible-Dropped"] == "1"
    assert stored(db) == []
    assert post(shop, body, Origin="https://www.shop.test").status_code == 202
    assert len(stored(db)) == 1


def test_of_two_domains_only_the_registered_ones_event_is_stored(shop: FlaskClient, db):
    response = post(shop, {"n": "pageview", "u": "https://www.shop.test/", "d": "shop.test,nobody.test"})
    assert response.headers["X-Plausible-Dropped"] == "1"
    assert [event["site_id"] for event in stored(db)] == ["shop"]
