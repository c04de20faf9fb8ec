"""Review of issue #30 (review-30): Celery's task metrics come from Flower's `/metrics`
(docs/monitoring.md, the `analytics-flower` job of docs/monitoring/prometheus.yml), which no
test scraped. The first test fails on main as of 74d12d1: Flower 2.2's `Metrics` handler is not
`@web.authenticated`, so FLOWER_BASIC_AUTH does not guard it, though the compose comment and
docs/monitoring.md present Flower as behind its login."""

import requests

from tests.integration.client import post_event
from tests.integration.test_flower import AUTH, flower_url  # noqa: F401 (a fixture)
from tests.metrics import parse
from tools.factories import make_event, new_site_id
from tools.processes import wait_until


def test_flower_metrics_need_the_scrape_configs_credentials(flower_url):  # noqa: F811
    assert requests.get(f"{flower_url}/metrics", timeout=10).status_code == 401


def test_flower_metrics_count_the_persist_tasks(flower_url, pipeline):  # noqa: F811
    site_id = new_site_id()

    def counted() -> bool:
        post_event(pipeline["ingestion"], make_event(site_id=site_id))
        response = requests.get(f"{flower_url}/metrics", auth=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        return any(
            name == "flower_events_total" and dict(labels).get("type") == "task-succeeded" and found > 0
            for (name, labels), found in parse(response.text).items()
        )

    wait_until(counted, 60, "a task-succeeded event counted in Flower's /metrics", interval=1)
