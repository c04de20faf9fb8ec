"""Flower watches the real worker, behind basic auth taken from the environment, started by
the launcher `make flower` and docker compose use (tasks/flower.py)."""

import pytest
import requests

from app.queue import PERSIST_TASK
from tests.integration.client import post_event
from tests.integration.services import serve_flower, start_flower
from tests.metrics import parse
from tools.factories import make_event, new_site_id
from tools.processes import port_open, wait_until

AUTH = ("flower-admin", "s3cret")


@pytest.fixture(scope="module")
def flower_url(service_env, run_dir, worker):
    yield from serve_flower("flower", service_env, run_dir, FLOWER_BASIC_AUTH=":".join(AUTH))


@pytest.fixture(scope="module")
def flower_without_credentials_url(service_env, run_dir):
    yield from serve_flower("flower-open", service_env, run_dir, FLOWER_BASIC_AUTH="")


def test_flower_lists_the_running_worker(flower_url):
    def worker_listed():
        response = requests.get(f"{flower_url}/api/workers", params={"refresh": "1"}, auth=AUTH, timeout=10)
        return response.status_code == 200 and any(name.startswith("worker@") for name in response.json())

    wait_until(worker_listed, 60, "the worker in Flower's API", interval=0.5)


def test_flower_refuses_requests_without_credentials(flower_url):
    assert requests.get(f"{flower_url}/api/workers", timeout=10).status_code == 401


@pytest.mark.parametrize("header", ["Basic .", "Basic Og==", "Basic "])
def test_flower_refuses_empty_credentials(flower_url, header):
    response = requests.get(f"{flower_url}/api/workers", headers={"Authorization": header}, timeout=10)
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Basic .", "Basic Og=="])
def test_an_empty_flower_basic_auth_is_no_credential_that_an_empty_login_matches(
    flower_without_credentials_url, header
):
    """Without credentials the control API stays shut (and FLOWER_UNAUTHENTICATED_API is refused)."""
    url = f"{flower_without_credentials_url}/api/workers"
    assert requests.get(url, headers={"Authorization": header}, timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"FLOWER_HOST": "0.0.0.0"}, "FLOWER_BASIC_AUTH=user:password"),
        ({"FLOWER_UNAUTHENTICATED_API": "true"}, "FLOWER_UNAUTHENTICATED_API would open Flower's API"),
    ],
    ids=["beyond-loopback", "unauthenticated-api"],
)
def test_flower_without_credentials_refuses_to_start_where_anyone_could_drive_it(
    service_env, run_dir, settings, reason
):
    process, port = start_flower(f"flower-{'-'.join(settings).lower()}", service_env, run_dir, **settings)
    try:
        wait_until(lambda: not process.running(), 60, "the launcher to refuse")
        assert process.process is not None
        assert process.process.returncode != 0
        assert reason in process.log()
        assert not port_open(port)
    finally:
        process.stop()  # a Flower that did start must not outlive the test


def test_flower_sees_the_tasks_of_a_worker_that_sends_no_events_until_watched(flower_url, pipeline):
    """Workers start with task events off; Flower turns them on, so it still sees each task."""
    site_id = new_site_id()

    def persist_task_seen():
        post_event(pipeline["ingestion"], make_event(site_id=site_id))
        response = requests.get(f"{flower_url}/api/tasks", params={"limit": 50}, auth=AUTH, timeout=10)
        return any(task.get("name") == PERSIST_TASK for task in response.json().values())

    wait_until(persist_task_seen, 60, "a persist task in Flower's API", interval=1)


def test_flower_metrics_need_the_scrape_configs_credentials(flower_url):
    """Flower 2.2 leaves its `/metrics` open; the launcher's Flower puts it behind the login."""
    assert requests.get(f"{flower_url}/metrics", timeout=10).status_code == 401


def test_flower_metrics_count_the_persist_tasks(flower_url, pipeline):
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
