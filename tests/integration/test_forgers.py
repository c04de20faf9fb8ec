"""What a forger can do to the real ingestion service in AUTH_MODE=keys, with low limits: the
sites registered and the server key made with the real `flask` CLI, each client a forwarded
address (the test is the trusted proxy)."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.integration.client import TIMEOUT
from tests.integration.keyed import REFRESH_SECONDS, flask
from tests.integration.services import start_healthy
from tools.factories import BROWSER_USER_AGENT, make_event

ADDRESS_LIMIT = 5
SITE_LIMIT = 8


@dataclass
class Guarded:
    ingestion: str
    budget_site: str  # takes servers without a key; domain budget.test
    locked_site: str  # takes servers only with its server key; domain locked.test
    spare_site: str  # for tests that need a site of their own; domain spare.test
    server_key: str  # the locked site's


@pytest.fixture(scope="module")
def guarded(service_env, run_dir) -> Iterator[Guarded]:
    env = {
        **service_env,
        "AUTH_MODE": "keys",
        "REGISTRY_REFRESH_SECONDS": str(REFRESH_SECONDS),
        "INGESTION_RATE_LIMIT": f"{ADDRESS_LIMIT}/minute",
        "SITE_RATE_LIMIT": f"{SITE_LIMIT}/minute",
        "TRUSTED_PROXIES": "127.0.0.1",
    }
    suffix = uuid.uuid4().hex[:8]
    budget, locked, spare = (f"{name}-{suffix}" for name in ("budget", "locked", "spare"))
    flask(env, "site", "add", budget, "--domain", "budget.test")
    flask(env, "site", "add", locked, "--domain", "locked.test", "--require-server-key")
    flask(env, "site", "add", spare, "--domain", "spare.test")
    server_key = flask(env, "key", "create", locked, "--server").splitlines()[-1]
    process, url = start_healthy("ingestion", env, run_dir, name="ingestion-guarded")
    try:
        yield Guarded(url, budget, locked, spare, server_key)
    finally:
        process.stop()


def post(url: str, site_id: str, client: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{url}/event",
        json=make_event(site_id=site_id),
        headers={"X-Forwarded-For": client, "User-Agent": BROWSER_USER_AGENT, **headers},
        timeout=TIMEOUT,
    )


def assert_over(response: requests.Response, limit: int) -> None:
    assert response.status_code == 429, response.text[:300]
    assert response.headers["RateLimit-Limit"] == str(limit)


def test_a_forger_without_an_origin_cannot_use_up_the_budget_of_a_sites_visitors(guarded):
    """Without an Origin anyone passes for a server: from as many addresses as the site's
    rate, such requests use up the servers' budget only."""
    forged = [post(guarded.ingestion, guarded.budget_site, f"198.51.100.{n}") for n in range(SITE_LIMIT)]
    assert [response.status_code for response in forged] == [200] * SITE_LIMIT
    assert_over(post(guarded.ingestion, guarded.budget_site, "198.51.100.99"), SITE_LIMIT)
    visitor = post(guarded.ingestion, guarded.budget_site, "203.0.113.7", Origin="https://budget.test")
    assert visitor.status_code == 200, visitor.text[:300]


def test_a_site_that_requires_its_server_key_refuses_servers_without_it(guarded):
    def send(client: str, **headers: str) -> requests.Response:
        return post(guarded.ingestion, guarded.locked_site, client, **headers)

    without = send("192.0.2.1")
    assert without.status_code == 403
    assert without.json()["message"].startswith(f"Site {guarded.locked_site} takes events from servers only")
    made_up = send("192.0.2.2", Authorization="Bearer sk_made-up")
    assert made_up.status_code == 403
    assert made_up.json()["message"] == f"The server key is not one of site {guarded.locked_site}'s keys"
    assert send("192.0.2.3", Authorization=f"Bearer {guarded.server_key}").status_code == 200
    assert send("192.0.2.4", Origin="https://locked.test").status_code == 200


def test_addresses_of_one_ipv6_64_share_one_count(guarded):
    page = {"Origin": "https://spare.test"}
    rotating = [
        post(guarded.ingestion, guarded.spare_site, f"2001:db8:aa:1::{n}", **page) for n in range(1, 6)
    ]
    assert [response.status_code for response in rotating] == [200] * ADDRESS_LIMIT
    assert_over(post(guarded.ingestion, guarded.spare_site, "2001:db8:aa:1:ffff::1", **page), ADDRESS_LIMIT)
    assert post(guarded.ingestion, guarded.spare_site, "2001:db8:aa:2::1", **page).status_code == 200


def large_gzip_batch(site_id: str, **fields: object) -> bytes:
    """500 events of about 2 KB each: nearly the largest batch the service inflates."""
    events = [make_event(site_id=site_id, path="/" + "p" * 1900, **fields) for _ in range(500)]
    return gzip.compress(json.dumps(events).encode())


def post_batch(url: str, body: bytes, client: str) -> requests.Response:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "X-Forwarded-For": client}
    return requests.post(f"{url}/events", data=body, headers=headers, timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("batch", "refusal", "client"),
    [
        (lambda guarded: large_gzip_batch(f"nobody-{uuid.uuid4().hex[:8]}"), 403, "192.0.2.101"),
        (lambda guarded: large_gzip_batch(guarded.spare_site, timestamp="not a time"), 400, "192.0.2.102"),
    ],
    ids=["unregistered-site", "all-invalid"],
)
def test_refused_batches_use_up_their_addresss_rate_and_then_go_unread(guarded, batch, refusal, client):
    """A 1 MB gzip batch refused for its site or its events cost an inflate, a parse and a
    validation: its address pays for it, and once over its rate is refused unread."""
    body = batch(guarded)
    assert len(json.loads(gzip.decompress(body))) == 500
    statuses = [post_batch(guarded.ingestion, body, client).status_code for _ in range(ADDRESS_LIMIT)]
    assert statuses == [refusal] * ADDRESS_LIMIT
    assert_over(post_batch(guarded.ingestion, body, client), ADDRESS_LIMIT)
    # Not even inflated now: what is no gzip at all gets the 429, not a 400.
    assert_over(post_batch(guarded.ingestion, b"not gzip", client), ADDRESS_LIMIT)
    assert post_batch(guarded.ingestion, body, "192.0.2.200").status_code == refusal
