"""AUTH_MODE=keys against the real services: sites registered with the real `flask` CLI,
ingestion refusing unknown sites and foreign pages, reporting refusing missing, wrong and
other sites' keys."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.client import TIMEOUT
from tools.factories import make_event
from tools.processes import PYTHON_BIN, STARTUP_TIMEOUT, ManagedProcess, http_ok, start_service, wait_until

# Short, so that the tests of a site added and a key revoked while the services run need
# not wait long.
REFRESH_SECONDS = 0.5
KEY_CACHE_SECONDS = 1
DAY = "2025-11-15"


def flask(env: dict[str, str], *args: str) -> str:
    """Run `flask --app wsgi:ingestion ARGS` as an operator would; return its output."""
    done = subprocess.run(
        [str(PYTHON_BIN / "flask"), "--app", "wsgi:ingestion", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@dataclass
class Keyed:
    """The services in keys mode, with two registered sites and their read keys."""

    env: dict[str, str]
    ingestion: str
    reporting: str
    shop: str  # site ids: unique per run, the session's database is shared
    blog: str
    shop_key: str
    blog_key: str
    operator_key: str


@pytest.fixture(scope="module")
def keyed(service_env: dict[str, str], run_dir: Path, worker: ManagedProcess) -> Iterator[Keyed]:
    env = {
        **service_env,
        "AUTH_MODE": "keys",
        "REGISTRY_REFRESH_SECONDS": str(REFRESH_SECONDS),
        "KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
    }
    suffix = uuid.uuid4().hex[:8]
    shop, blog = f"shop-{suffix}", f"blog-{suffix}"
    flask(env, "site", "add", shop, "--domain", "allowed.test", "--domain", "localhost")
    flask(env, "site", "add", blog, "--domain", "blog.test")
    shop_key, blog_key, operator_key = (
        flask(env, "key", "create", *args).splitlines()[-1] for args in ([shop], [blog], ["--operator"])
    )
    # Registered before the services start, so every process's first snapshot holds them.
    ingestion, ingestion_url = start_healthy("ingestion", env, run_dir)
    reporting, reporting_url = start_healthy("reporting", env, run_dir)
    yield Keyed(env, ingestion_url, reporting_url, shop, blog, shop_key, blog_key, operator_key)
    ingestion.stop()
    reporting.stop()


def start_healthy(app: str, env: dict[str, str], run_dir: Path) -> tuple[ManagedProcess, str]:
    process, url = start_service(app, env, run_dir, name=f"{app}-keys")
    wait_until(lambda: http_ok(f"{url}/health"), STARTUP_TIMEOUT, f"{app} (keys) health")
    return process, url


def post(url: str, body: Any, path: str = "/event", **headers: str) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, headers=headers, timeout=TIMEOUT)


def get(url: str, path: str, key: str | None = None, **params: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{url}{path}", params=params, headers=headers, timeout=TIMEOUT)


def test_an_unknown_site_is_refused_with_403(keyed):
    response = post(keyed.ingestion, make_event(site_id=f"nobody-{uuid.uuid4().hex[:8]}"))
    assert response.status_code == 403
    assert response.json()["message"].startswith("Unknown site: nobody-")


def test_a_page_on_a_foreign_host_is_refused_even_as_a_text_plain_beacon(keyed):
    response = requests.post(
        f"{keyed.ingestion}/event",
        data=json.dumps(make_event(site_id=keyed.shop)),
        headers={"Content-Type": "text/plain", "Origin": "http://foreign.test"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "message": f"Origin foreign.test is not one of the domains of site {keyed.shop}",
        "errors": {"site_id": [f"Origin foreign.test is not one of the domains of site {keyed.shop}"]},
    }


def test_events_from_an_allowed_page_and_from_a_server_are_counted_for_the_key_holder(keyed):
    user = uuid.uuid4().hex
    assert post(
        keyed.ingestion, make_event(site_id=keyed.shop, user_id=user), Origin="http://allowed.test:8080"
    ).ok
    assert post(keyed.ingestion, make_event(site_id=keyed.shop), Referer="http://localhost/page").ok
    batch = post(
        keyed.ingestion, [make_event(site_id=keyed.shop), make_event(site_id=keyed.blog)], path="/events"
    )
    assert batch.json()["accepted"] == 2

    def views() -> int:
        response = get(keyed.reporting, "/stats", keyed.shop_key, site_id=keyed.shop, date=DAY)
        assert response.status_code == 200, response.text
        total: int = response.json()["total_views"]
        return total

    wait_until(lambda: views() >= 3, 60, "the shop's three events counted", interval=0.2)
    assert views() == 3


def test_a_batch_from_a_foreign_page_is_refused_with_403(keyed):
    response = post(
        keyed.ingestion, {"events": [make_event(site_id=keyed.blog)]}, "/events", Origin="http://allowed.test"
    )
    assert response.status_code == 403
    assert set(response.json()["errors"]) == {"0"}


@pytest.mark.parametrize("key", [None, "ak_wrong"])
def test_a_missing_or_wrong_key_is_401(keyed, key):
    for path in ("/stats", "/stats/aggregated", "/stats/realtime", "/health/pipeline"):
        response = get(keyed.reporting, path, key, site_id=keyed.shop, date=DAY)
        assert response.status_code == 401, path
        assert response.json()["status"] == "error"
        assert "Bearer" in response.headers["WWW-Authenticate"]


def test_another_sites_key_is_403(keyed):
    response = get(keyed.reporting, "/stats", keyed.blog_key, site_id=keyed.shop, date=DAY)
    assert response.status_code == 403
    assert response.json() == {
        "status": "error",
        "message": f"This key does not give access to site {keyed.shop}",
    }


def test_pipeline_totals_need_the_operator_key_and_health_is_open(keyed):
    assert get(keyed.reporting, "/health").status_code == 200
    assert get(keyed.reporting, "/health/pipeline", keyed.shop_key).status_code == 403
    assert get(keyed.reporting, "/health/pipeline", keyed.operator_key).status_code == 200
    assert (
        get(keyed.reporting, "/health/pipeline", keyed.shop_key, site_id=keyed.shop, date=DAY).status_code
        == 200
    )


def test_a_revoked_key_is_refused_within_the_cache_time(keyed):
    key = flask(keyed.env, "key", "create", keyed.blog).splitlines()
    key_id, secret = key[0].split()[1], key[-1]
    assert get(keyed.reporting, "/stats/realtime", secret, site_id=keyed.blog).status_code == 200
    assert key_id in flask(keyed.env, "key", "list", keyed.blog)
    flask(keyed.env, "key", "revoke", key_id)
    revoked = time.monotonic()
    assert key_id not in flask(keyed.env, "key", "list", keyed.blog)
    # A process may trust the key it verified for KEY_CACHE_SECONDS more: wait until two
    # answers in a row refuse it (gunicorn's processes each have their own cache).
    wait_until(
        lambda: all(
            get(keyed.reporting, "/stats/realtime", secret, site_id=keyed.blog).status_code == 401
            for _ in range(2)
        ),
        30,
        "the revoked key refused",
        interval=0.05,
    )
    assert time.monotonic() - revoked < KEY_CACHE_SECONDS + 5


def test_a_site_added_while_running_is_accepted_within_the_refresh_interval(keyed):
    site = f"late-{uuid.uuid4().hex[:8]}"
    assert post(keyed.ingestion, make_event(site_id=site)).status_code == 403
    flask(keyed.env, "site", "add", site, "--domain", "late.test")
    added = time.monotonic()
    # Each gunicorn process refreshes on its own: wait until two answers in a row accept.
    accepted_in_a_row = 0

    def accepted_twice() -> bool:
        nonlocal accepted_in_a_row
        accepted_in_a_row = accepted_in_a_row + 1 if post(keyed.ingestion, make_event(site_id=site)).ok else 0
        return accepted_in_a_row >= 2

    wait_until(accepted_twice, 30, f"{site} accepted", interval=0.05)
    # Generous for a loaded machine: the process refreshes every REFRESH_SECONDS.
    assert time.monotonic() - added < REFRESH_SECONDS + 5
