"""Ingestion with AUTH_MODE=keys: only registered sites, from their own domains."""

import json

import mongomock.collection
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


@pytest.fixture
def locked(keyed_ingestion_app, cli):
    """Site `vault` (domain vault.test) that takes servers' events only with its server key;
    returns the key. Site `shop` is registered too, with a server key of its own."""
    cli("site", "add", "vault", "--domain", "vault.test", "--require-server-key")
    cli("site", "add", "shop", "--domain", "shop.test")
    key = cli("key", "create", "vault", "--server").splitlines()[-1]
    cli("key", "create", "shop", "--server")
    keyed_ingestion_app.extensions["site_registry"].refresh()
    return key


def test_a_site_requiring_a_server_key_refuses_a_server_without_one(keyed_ingestion, locked, db):
    response = post(keyed_ingestion, make_event(site_id="vault"))
    assert response.status_code == 403
    message = (
        "Site vault takes events from servers only with its server key: send Authorization: Bearer <key>"
    )
    assert response.get_json() == {"status": "error", "message": message, "errors": {"site_id": [message]}}
    assert db[event_store.EVENTS].count_documents({}) == 0


def test_its_server_key_admits_a_server_in_any_spelling_of_the_header(keyed_ingestion, locked, db):
    for authorization in (f"Bearer {locked}", f"bearer  {locked}"):
        assert (
            post(keyed_ingestion, make_event(site_id="vault"), Authorization=authorization).status_code == 200
        )
    assert db[event_store.EVENTS].count_documents({"site_id": "vault"}) == 2


def test_a_page_on_its_domains_needs_no_key(keyed_ingestion, locked):
    assert post(keyed_ingestion, make_event(site_id="vault"), Origin="https://vault.test").status_code == 200


@pytest.mark.parametrize(
    "make_key",
    [
        lambda cli: "sk_made-up",
        lambda cli: cli("key", "create", "vault").splitlines()[-1],  # its read key
        lambda cli: cli("key", "create", "shop", "--server").splitlines()[-1],  # another site's
    ],
    ids=["made-up", "read-key", "another-sites"],
)
def test_a_key_that_is_not_one_of_the_sites_server_keys_is_refused(
    keyed_ingestion_app, keyed_ingestion, locked, cli, make_key
):
    key = make_key(cli)
    keyed_ingestion_app.extensions["site_registry"].refresh()
    response = post(keyed_ingestion, make_event(site_id="vault"), Authorization=f"Bearer {key}")
    assert response.status_code == 403
    assert response.get_json()["message"] == "The server key is not one of site vault's keys"


def test_a_key_sent_is_checked_also_for_a_site_that_does_not_require_one(keyed_ingestion, locked):
    response = post(keyed_ingestion, make_event(site_id="shop"), Authorization="Bearer sk_made-up")
    assert response.status_code == 403
    assert response.get_json()["message"] == "The server key is not one of site shop's keys"


def test_a_server_key_is_checked_in_the_registrys_snapshot_with_no_mongodb_round_trip(
    keyed_ingestion_app, keyed_ingestion, locked, monkeypatch
):
    keyed_ingestion_app.extensions["site_registry"].start().wait(5)  # its first load done
    reads = []
    for method in ("find", "find_one", "count_documents", "aggregate"):
        original = getattr(mongomock.collection.Collection, method)

        def counting(self, *args, _original=original, **kwargs):
            reads.append(self.name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(mongomock.collection.Collection, method, counting)
    statuses = [
        post(keyed_ingestion, make_event(site_id="vault"), Authorization=f"Bearer {key}").status_code
        for key in [locked] * 5 + [f"sk_made-up-{n}" for n in range(5)]
    ]
    assert statuses == [200] * 5 + [403] * 5
    # The worker runs eagerly here: its reads of the events and their visits are not ingestion's.
    assert [name for name in reads if name not in ("events", "visits")] == []
