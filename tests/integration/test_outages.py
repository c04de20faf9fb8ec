"""What clients see when a server behind a service is down: a fast 503, never a hang."""

import shutil
import time

import pytest
import requests

from tests.integration.client import post_event
from tools.factories import make_event
from tools.local_services import redis_argv
from tools.processes import free_port, start_local_server, start_service

# A generous bound: the contract says about a second; anything near this is a hang.
REFUSAL_DEADLINE = 5


@pytest.fixture
def own_redis(run_dir):
    """A Redis of this test's own, so stopping it disturbs no other test."""
    if not shutil.which("redis-server"):
        pytest.skip("needs a local redis-server binary")
    server = start_local_server(f"redis-outage-{free_port()}", redis_argv, run_dir / "outage")
    yield server
    server.stop()


def test_with_redis_stopped_ingestion_answers_503_fast_and_recovers(own_redis, service_env, run_dir):
    env = {**service_env, "REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0"}
    process, url = start_service("ingestion", env, run_dir, name="ingestion-outage")
    try:
        assert post_event(url, make_event()).status_code == 200
        own_redis.stop()

        started = time.monotonic()
        response = post_event(url, make_event(), timeout=REFUSAL_DEADLINE)
        refused_in = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["status"] == "error"
        assert "not accepted" in response.json()["message"]
        assert refused_in < REFUSAL_DEADLINE

        health = requests.get(f"{url}/health", timeout=REFUSAL_DEADLINE)
        assert health.status_code == 503
        assert health.json()["status"] == "error"

        own_redis.start()
        assert post_event(url, make_event()).status_code == 200
        assert requests.get(f"{url}/health", timeout=REFUSAL_DEADLINE).status_code == 200
    finally:
        process.stop()


def test_with_mongo_unreachable_reporting_health_is_503(service_env, run_dir):
    env = {
        **service_env,
        "MONGO_URI": f"mongodb://127.0.0.1:{free_port()}/analytics",
        "MONGO_TIMEOUT_MS": "500",
    }
    process, url = start_service("reporting", env, run_dir, name="reporting-outage")
    try:
        health = requests.get(f"{url}/health", timeout=REFUSAL_DEADLINE)
        assert health.status_code == 503
        assert health.json()["status"] == "error"
        stats = requests.get(
            f"{url}/stats", params={"site_id": "s", "date": "2025-11-15"}, timeout=REFUSAL_DEADLINE
        )
        assert stats.status_code == 503
        assert stats.json()["status"] == "error"
    finally:
        process.stop()
