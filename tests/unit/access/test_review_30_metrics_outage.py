"""Review of issue #30 (review-30): `/metrics` during a MongoDB outage. Fails on main as of
74d12d1."""

from __future__ import annotations

from unittest import mock

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from app.access.keys import key_cache
from app.store import sites
from tests.unit.access.test_reporting_access import bearer
from tests.unit.monitoring.scrape import scrape


@pytest.mark.parametrize("service", ["keyed_ingestion", "keyed_reporting"])
def test_metrics_can_be_scraped_while_mongodb_is_away(request, service, cli):
    """PipelineCollector's docstring and docs/monitoring.md: a scrape while MongoDB is away
    still answers, `analytics_pipeline_up` 0. But the operator key is looked up in MongoDB once
    KEY_CACHE_SECONDS (30 s) has passed: the scrape is a 503, so `AnalyticsPipelineUnreadable`
    cannot fire, and ingestion, which keeps accepting events without MongoDB, loses its
    metrics for the whole outage."""
    client = request.getfixturevalue(service)
    operator = cli("key", "create", "--operator").splitlines()[-1]
    assert scrape(client, bearer(operator))
    key_cache._known.clear()  # the key's KEY_CACHE_SECONDS have passed
    away = ServerSelectionTimeoutError("mongo-1:27017: [Errno 111] Connection refused")
    with mock.patch("app.store.sites.key_by_hash", side_effect=away):
        response = client.get("/metrics", headers=bearer(operator))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_ingestion_metrics_do_not_query_mongodb_for_every_made_up_key(keyed_ingestion):
    """Ingestion is the public service ("needs Redis only", docs/failover.md), and its rate
    limits count only POSTs (app/ingestion/rate_limits.py). Its `/metrics` verifies the bearer
    token in MongoDB, remembering only tokens it has seen: one address sending made-up tokens
    makes a MongoDB query each, unlimited (and, while MongoDB is away, holds a connection for
    MONGO_TIMEOUT_MS each)."""
    with mock.patch("app.store.sites.key_by_hash", wraps=sites.key_by_hash) as lookup:
        for n in range(100):
            assert keyed_ingestion.get("/metrics", headers=bearer(f"ak_made_up_{n}")).status_code == 401
    assert lookup.call_count <= 10, f"{lookup.call_count} MongoDB lookups for 100 made-up keys"
