"""Ingestion with AUTH_MODE=keys: only registered sites, from their own domains."""

import json

import pytest

from app.store import events as event_store
from tools.factories import make_event


@pytest.fixture
def registered(keyed_ingestion_app, cli):
    """Site `shop` with domains shop.test and www.shop.test, seen by the ingestion app."""
    cli("site", "add", "shop", "--domain", "shop.test", "--domain", "www.shop.test")
    keyed_ingestion_app.extensions["site_registry"].refresh()


def post(client, body, path="/event", content_type="application/json", **headers):
    return client.post(path, data=json.dumps(body), content_type=content_type, headers=headers)


def test_an_unknown_site_is_refused_with_403_saying_so(keyed_ingestion, registered, db):
    response = post(keyed_ingestion, make_event(site_id="nobody"))
    assert response.status_code == 403
    body = response.get_json()
    assert body["status"] == "error"
    assert "Unknown site: nobody" in body["message"]
    assert body["errors"] == {"site_id": [body["message"]]}
    assert db[event_store.EVENTS].count_documents({}) == 0


def test_a_server_without_origin_or_referer_may_send_a_registered_sites_events(
    keyed_ingestion, registered, db
):
    assert post(keyed_ingestion, make_event(site_id="shop")).status_code == 200
    assert db[event_store.EVENTS].count_documents({"site_id": "shop"}) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://shop.test"},
        {"Origin": "http://www.shop.test:8080"},
        {"Referer": "https://shop.test/pricing"},
    ],
)
def test_a_page_on_one_of_the_sites_domains_is_accepted(keyed_ingestion, registered, headers):
    assert post(keyed_ingestion, make_event(site_id="shop"), **headers).status_code == 200


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"Origin": "https://evil.test"}, "evil.test"),
        ({"Origin": "https://shop.test.evil.test"}, "shop.test.evil.test"),
        ({"Origin": "https://blog.shop.test"}, "blog.shop.test"),  # subdomains are listed one by one
        ({"Referer": "https://evil.test/page"}, "evil.test"),
        ({"Origin": "null"}, "null"),
        ({"Origin": "https://evil.test", "Referer": "https://shop.test/"}, "evil.test"),
    ],
)
def test_a_page_on_another_host_is_refused_server_side(keyed_ingestion, registered, db, headers, named):
    response = post(keyed_ingestion, make_event(site_id="shop"), **headers)
    assert response.status_code == 403
    assert response.get_json()["message"] == f"Origin {named} is not one of the domains of site shop"
    assert db[event_store.EVENTS].count_documents({}) == 0


def test_a_text_plain_beacon_from_a_foreign_page_is_refused(keyed_ingestion, registered):
    response = post(
        keyed_ingestion, make_event(site_id="shop"), content_type="text/plain", Origin="https://evil.test"
    )
    assert response.status_code == 403


def test_a_batch_accepts_its_admitted_events_and_lists_the_refused_by_index(keyed_ingestion, registered, db):
    events = [make_event(site_id="shop"), make_event(site_id="nobody"), make_event(site_id="shop", path=1)]
    response = post(keyed_ingestion, {"events": events}, path="/events")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert list(body["errors"]) == ["1", "2"]
    assert body["errors"]["1"] == {"site_id": ["Unknown site: nobody is not registered"]}
    assert db[event_store.EVENTS].count_documents({}) == 1


def test_a_batch_with_no_admitted_event_is_refused_with_403(keyed_ingestion, registered, db):
    events = [make_event(site_id="shop"), make_event(site_id="shop")]
    response = post(keyed_ingestion, events, path="/events", Origin="https://evil.test")
    assert response.status_code == 403
    assert set(response.get_json()["errors"]) == {"0", "1"}
    assert db[event_store.EVENTS].count_documents({}) == 0


def test_a_removed_site_is_refused_after_the_next_refresh(
    keyed_ingestion_app, keyed_ingestion, registered, cli
):
    assert post(keyed_ingestion, make_event(site_id="shop")).status_code == 200
    cli("site", "remove", "shop")
    keyed_ingestion_app.extensions["site_registry"].refresh()
    assert post(keyed_ingestion, make_event(site_id="shop")).status_code == 403


def test_open_mode_accepts_any_site_from_any_page(ingestion):
    response = post(ingestion, make_event(site_id="anything"), Origin="https://evil.test")
    assert response.status_code == 200
