"""With AUTH_MODE=keys, a server names the visitor it sends for (`ip`, `user_agent`) only
with the site's server key."""

import json

import pytest

from app.ingestion import bots, views
from tools.factories import make_event

SDK_UA = "analytics-python/2.3.3"
VISITOR = {
    "ip": "198.51.100.23",
    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5",
}


@pytest.fixture
def server_key(keyed_ingestion_app, cli):
    cli("site", "add", "shop", "--domain", "shop.test")
    key = cli("key", "create", "shop", "--server").splitlines()[-1]
    keyed_ingestion_app.extensions["site_registry"].refresh()
    return key


@pytest.fixture
def queued(monkeypatch):
    messages = []
    monkeypatch.setattr(views.committer, "submit", lambda batch, **_: messages.extend(batch))
    return messages


def post(client, body, address, user_agent, **headers):
    return client.post(
        "/event",
        data=json.dumps(body),
        content_type="application/json",
        headers={"User-Agent": user_agent, **headers},
        environ_base={"REMOTE_ADDR": address},
    )


def test_a_server_with_the_site_s_key_names_the_visitor(keyed_ingestion, server_key, queued):
    event = make_event(site_id="shop", user_id=None)
    response = post(
        keyed_ingestion, event | VISITOR, "10.0.0.5", SDK_UA, Authorization=f"Bearer {server_key}"
    )
    assert response.status_code == 200
    assert post(keyed_ingestion, event, VISITOR["ip"], VISITOR["user_agent"]).status_code == 200
    on_behalf, direct = queued
    assert on_behalf["visitor_id"] == direct["visitor_id"]
    assert on_behalf["user_agent"] == VISITOR["user_agent"]


def test_a_server_without_a_key_counts_as_itself(keyed_ingestion, server_key, queued):
    event = make_event(site_id="shop", user_id=None)
    assert post(keyed_ingestion, event | VISITOR, "10.0.0.5", SDK_UA).status_code == 200
    assert post(keyed_ingestion, event, "10.0.0.5", SDK_UA).status_code == 200
    keyless, itself = queued
    assert keyless["visitor_id"] == itself["visitor_id"]
    assert keyless["user_agent"] == SDK_UA


def test_a_bot_s_event_of_an_unknown_site_is_refused_and_not_counted(
    keyed_ingestion, server_key, counter_store
):
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    response = post(
        keyed_ingestion, make_event(site_id="forged"), "10.0.0.5", googlebot, Origin="https://x.test"
    )
    assert response.status_code == 403
    assert bots.dropped_totals(counter_store) == dict.fromkeys(bots.REASONS, 0)
    registered = post(
        keyed_ingestion, make_event(site_id="shop"), "10.0.0.5", googlebot, Origin="https://shop.test"
    )
    assert registered.status_code == 200
    assert bots.dropped_on(counter_store, "shop", "2025-11-15")["crawler"] == 1
