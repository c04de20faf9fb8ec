"""AUTH_MODE=keys against the real services: sites registered with the real `flask` CLI,
ingestion refusing unknown sites and foreign pages, reporting refusing missing, wrong and
other sites' keys."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from tests.integration.client import TIMEOUT
from tests.integration.keyed import KEY_CACHE_SECONDS, REFRESH_SECONDS, flask
from tests.integration.services import start_healthy
from tools.factories import BROWSER_USER_AGENT, make_event
from tools.processes import wait_until

DAY = "2025-11-15"


def post(url: str, body: Any, path: str = "/event", **headers: str) -> requests.Response:
    """Posted as a person's browser would (its user agent), from a page when `Origin` or
    `Referer` is given, else as a server."""
    headers = {"User-Agent": BROWSER_USER_AGENT, **headers}
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


def test_the_pipeline_needs_the_operator_key_even_for_one_site_and_health_is_open(keyed):
    assert get(keyed.reporting, "/health").status_code == 200
    assert get(keyed.reporting, "/health/pipeline", keyed.shop_key).status_code == 403
    assert get(keyed.reporting, "/health/pipeline", keyed.operator_key).status_code == 200
    one_site = {"site_id": keyed.shop, "date": DAY}
    assert get(keyed.reporting, "/health/pipeline", keyed.shop_key, **one_site).status_code == 403
    assert get(keyed.reporting, "/health/pipeline", keyed.operator_key, **one_site).status_code == 200


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


def test_a_site_s_first_event_is_accepted_at_once_after_it_is_added(keyed, run_dir):
    """No waiting for the next refresh (here an hour away): an unknown site makes each
    ingestion process load the registry again, at most once a second."""
    env = {**keyed.env, "REGISTRY_REFRESH_SECONDS": "3600"}
    process, ingestion = start_healthy("ingestion", env, run_dir, name="ingestion-slow-refresh")
    try:
        site = f"new-{uuid.uuid4().hex[:8]}"
        flask(keyed.env, "site", "add", site, "--domain", "new.test")
        # Every answer at once, from whichever of the gunicorn processes takes the request.
        statuses = [post(ingestion, make_event(site_id=site)).status_code for _ in range(4)]
        assert statuses == [200] * 4
    finally:
        process.stop()
