"""`/metrics` with AUTH_MODE=keys: every site's figures, so an operator's key on both services."""

from unittest import mock

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from app.access import keys
from app.access.keys import key_cache
from app.store import sites
from tests.unit.access.test_reporting_access import bearer
from tests.unit.monitoring.scrape import scrape


@pytest.mark.parametrize("service", ["keyed_ingestion", "keyed_reporting"])
def test_metrics_need_an_operator_key(request, service, site_key, cli):
    client = request.getfixturevalue(service)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(site_key("shop"))).status_code == 403
    operator = cli("key", "create", "--operator").splitlines()[-1]
    assert scrape(client, bearer(operator))


@pytest.mark.parametrize("service", ["keyed_ingestion", "keyed_reporting"])
def test_metrics_can_be_scraped_while_mongodb_is_away(request, service, cli):
    """A key verified once is still trusted while MongoDB cannot be read, so that
    `AnalyticsPipelineUnreadable` can fire and ingestion keeps its metrics."""
    client = request.getfixturevalue(service)
    operator = cli("key", "create", "--operator").splitlines()[-1]
    assert scrape(client, bearer(operator))
    key_cache._known.clear()  # the key's KEY_CACHE_SECONDS have passed
    away = ServerSelectionTimeoutError("mongo-1:27017: [Errno 111] Connection refused")
    with mock.patch("app.store.sites.key_by_hash", side_effect=away):
        response = client.get("/metrics", headers=bearer(operator))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert client.get("/metrics", headers=bearer("ak_never_verified")).status_code == 503


def test_ingestion_metrics_do_not_query_mongodb_for_every_made_up_key(keyed_ingestion):
    with mock.patch("app.store.sites.key_by_hash", wraps=sites.key_by_hash) as lookup:
        for n in range(100):
            assert keyed_ingestion.get("/metrics", headers=bearer(f"ak_made_up_{n}")).status_code == 401
    assert lookup.call_count <= 10, f"{lookup.call_count} MongoDB lookups for 100 made-up keys"


AWAY = ServerSelectionTimeoutError("mongo-1:27017: [Errno 111] Connection refused")


def test_a_site_key_is_never_trusted_through_an_outage(keyed_reporting, site_key, cli, db):
    """`/stats/realtime` is answered from Redis alone: a revoked site key must not read it
    while MongoDB cannot tell that it was revoked."""
    secret = site_key("shop")
    assert keyed_reporting.get("/stats/realtime?site_id=shop", headers=bearer(secret)).status_code == 200
    key_id = next(line for line in cli("key", "list").splitlines() if "shop" in line).split()[0]
    cli("key", "revoke", key_id)
    key_cache._known.clear()  # the key's KEY_CACHE_SECONDS have passed
    with mock.patch("app.store.sites.key_by_hash", side_effect=AWAY):
        response = keyed_reporting.get("/stats/realtime?site_id=shop", headers=bearer(secret))
    assert response.status_code == 503, response.get_data(as_text=True)


def test_one_clients_made_up_tokens_never_lock_another_out_of_metrics(keyed_ingestion, cli, monkeypatch):
    monkeypatch.setattr(keys.time, "monotonic", lambda: 5000.0)  # all within one second
    operator = cli("key", "create", "--operator").splitlines()[-1]
    prober = {"REMOTE_ADDR": "198.51.100.7"}
    for n in range(10):
        response = keyed_ingestion.get("/metrics", headers=bearer(f"ak_made_up_{n}"), environ_base=prober)
        assert response.status_code == 401
    answer = keyed_ingestion.get(
        "/metrics", headers=bearer(operator), environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )
    assert answer.status_code == 200, (answer.status_code, answer.get_data(as_text=True))
