"""`/metrics` with AUTH_MODE=keys: every site's figures, so an operator's key on both services."""

import pytest

from tests.unit.access.test_reporting_access import bearer
from tests.unit.monitoring.scrape import scrape


@pytest.mark.parametrize("service", ["keyed_ingestion", "keyed_reporting"])
def test_metrics_need_an_operator_key(request, service, site_key, cli):
    client = request.getfixturevalue(service)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(site_key("shop"))).status_code == 403
    operator = cli("key", "create", "--operator").splitlines()[-1]
    assert scrape(client, bearer(operator))
