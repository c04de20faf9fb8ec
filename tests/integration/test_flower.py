"""Flower watches the real worker, behind basic auth taken from the environment."""

import pytest
import requests

from app.queue import PERSIST_TASK
from tests.integration.client import post_event
from tools.factories import make_event, new_site_id
from tools.processes import ManagedProcess, celery_argv, free_port, port_open, wait_until

AUTH = ("flower-admin", "s3cret")


@pytest.fixture(scope="module")
def flower_url(service_env, run_dir, worker):
    port = free_port()
    env = {**service_env, "FLOWER_BASIC_AUTH": ":".join(AUTH)}
    process = ManagedProcess(
        "flower", celery_argv("flower", "--address=127.0.0.1", f"--port={port}"), env, run_dir
    )
    process.start()
    wait_until(lambda: port_open(port), 60, "flower")
    yield f"http://127.0.0.1:{port}"
    process.stop()


def test_flower_lists_the_running_worker(flower_url):
    def worker_listed():
        response = requests.get(f"{flower_url}/api/workers", params={"refresh": "1"}, auth=AUTH, timeout=10)
        return response.status_code == 200 and any(name.startswith("worker@") for name in response.json())

    wait_until(worker_listed, 60, "the worker in Flower's API", interval=0.5)


def test_flower_refuses_requests_without_credentials(flower_url):
    assert requests.get(f"{flower_url}/api/workers", timeout=10).status_code == 401


def test_flower_sees_the_tasks_of_a_worker_that_sends_no_events_until_watched(flower_url, pipeline):
    """Workers start with task events off; Flower turns them on, so it still sees each task."""
    site_id = new_site_id()

    def persist_task_seen():
        post_event(pipeline["ingestion"], make_event(site_id=site_id))
        response = requests.get(f"{flower_url}/api/tasks", params={"limit": 50}, auth=AUTH, timeout=10)
        return any(task.get("name") == PERSIST_TASK for task in response.json().values())

    wait_until(persist_task_seen, 60, "a persist task in Flower's API", interval=1)
