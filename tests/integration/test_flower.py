"""Flower watches the real worker, behind basic auth taken from the environment."""

import pytest
import requests

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
