"""`/metrics` with AUTH_MODE=keys: every site's figures, so an operator's key on both services."""

from unittest import mock

import pytest
from pymongo.errors import ServerSelectionTimeoutError

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
