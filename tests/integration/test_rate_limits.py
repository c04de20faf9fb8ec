"""Rate limits on the real services, counted in the real Redis across gunicorn's workers."""

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import requests

from app.web.client_address import keyed_hash
from tests.integration.client import TIMEOUT, post_event
from tests.integration.services import start_healthy, start_healthy_services
from tools.factories import make_event, new_site_id
from tools.processes import stop_all

LIMIT = 5
ADDRESS_KEY = "test-address-key"


@pytest.fixture(scope="module")
def limited(service_env, run_dir):
    """Ingestion and reporting with low limits: {"ingestion": url, "reporting": url}."""
    env = {
        **service_env,
        "INGESTION_RATE_LIMIT": f"{LIMIT}/minute",
        "SITE_RATE_LIMIT": f"{LIMIT}/minute",
        "REPORTING_RATE_LIMIT": f"{LIMIT}/minute",
        "TRUSTED_PROXIES": "127.0.0.1",
        "ADDRESS_KEY": ADDRESS_KEY,
    }
    services = start_healthy_services(
        {"ingestion": "ingestion-limited", "reporting": "reporting-limited"}, env, run_dir
    )
    yield {app: url for app, (_, url) in services.items()}
    stop_all(process for process, _ in services.values())


@pytest.fixture(scope="module")
def counted_in_process(service_env, run_dir):
    """Ingestion on two workers with an address limit counted in each process."""
    env = {
        **service_env,
        "INGESTION_RATE_LIMIT": "100 per 10 seconds",
        "TRUSTED_PROXIES": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
    }
    process, url = start_healthy("ingestion", env, run_dir, name="ingestion-in-process")
    yield url
    process.stop()


def test_a_limit_counted_in_each_process_overshoots_by_at_most_a_lease_a_worker(counted_in_process):
    """Flooded past its limit, the two workers together admit the limit, plus at most the 5%
    each admits before asking Redis."""
    url = f"{counted_in_process}/event"

    def send(_):
        event = make_event(site_id=new_site_id())
        return requests.post(url, json=event, headers={"X-Forwarded-For": "203.0.113.77"}, timeout=TIMEOUT)

    with ThreadPoolExecutor(8) as pool:
        statuses = [response.status_code for response in pool.map(send, range(140))]
    assert set(statuses) == {200, 429}
    assert 100 <= statuses.count(200) <= 100 + 2 * 5


def assert_rate_limited(response):
    assert response.status_code == 429, response.text
    assert response.json()["status"] == "error"
    assert response.headers["RateLimit-Limit"] == str(LIMIT)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["RateLimit-Reset"] == response.headers["Retry-After"]


def test_a_client_over_its_rate_gets_429_and_others_are_still_served(limited):
    """Behind the trusted proxy (the test itself), each forwarded client has its own count."""
    url = f"{limited['ingestion']}/event"

    def send(client):
        event = make_event(site_id=new_site_id())
        return requests.post(url, json=event, headers={"X-Forwarded-For": client}, timeout=TIMEOUT)

    assert [send("203.0.113.1").status_code for _ in range(LIMIT)] == [200] * LIMIT
    assert_rate_limited(send("203.0.113.1"))
    assert send("203.0.113.2").status_code == 200


def test_a_site_over_its_rate_gets_429_from_any_client(limited):
    site_id = new_site_id()
    url = f"{limited['ingestion']}/event"
    statuses = [
        requests.post(url, json=make_event(site_id=site_id), headers={"X-Forwarded-For": f"198.51.100.{n}"},
                      timeout=TIMEOUT).status_code
        for n in range(LIMIT + 1)
    ]  # fmt: skip
    assert statuses[:LIMIT] == [200] * LIMIT
    assert_rate_limited(post_event(limited["ingestion"], make_event(site_id=site_id)))


def test_a_reporting_key_over_its_rate_gets_429(limited):
    url = f"{limited['reporting']}/stats"
    params = {"site_id": new_site_id(), "date": "2025-11-15"}

    def ask(key):
        return requests.get(url, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=TIMEOUT)

    assert [ask("key-one").status_code for _ in range(LIMIT)] == [200] * LIMIT
    assert_rate_limited(ask("key-one"))
    assert ask("key-two").status_code == 200


def test_one_reporting_key_however_spelt_has_one_bucket(limited):
    url = f"{limited['reporting']}/stats"
    params = {"site_id": new_site_id(), "date": "2025-11-15"}
    spellings = ["Bearer key-spelt", "bearer  key-spelt", "BEARER key-spelt", "Bearer key-spelt "]

    def ask(authorization):
        return requests.get(url, params=params, headers={"Authorization": authorization}, timeout=TIMEOUT)

    assert [ask(spellings[n % 4]).status_code for n in range(LIMIT)] == [200] * LIMIT
    assert_rate_limited(ask(spellings[LIMIT % 4]))


def redis_contents(client: redis.Redis) -> bytes:
    """Every key of the Redis and every value in it, of whatever type, as one text."""
    readers = {
        b"string": lambda key: [client.get(key)],
        b"hash": lambda key: [item for pair in client.hgetall(key).items() for item in pair],
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": lambda key: list(client.smembers(key)),
        b"zset": lambda key: client.zrange(key, 0, -1),
        b"stream": lambda key: [repr(entry).encode() for entry in client.xrange(key)],
    }
    parts = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        parts += [value or b"" for value in readers.get(client.type(key), lambda _: [])(key)]
    return b"\n".join(parts)


def append_only_files(client: redis.Redis) -> bytes:
    """What Redis's append-only files hold (the base and each increment), as one text."""
    directory = Path(client.config_get("dir")["dir"]) / client.config_get("appenddirname")["appenddirname"]
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()))


def test_the_client_address_reaches_neither_redis_nor_its_files(limited, service_env):
    """Each limit counts a client under a keyed hash of its address (an IPv6 client's /64):
    its keys are there, while no key, no value and no line of the append-only file holds the
    address, nor the /64, after requests to both services, one of them over the limit."""
    ipv4 = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    block = f"2001:db8:{random.randrange(1, 0xFFFF):x}"
    ipv6, network = f"{block}::7", f"{block}::/64"
    for client in (ipv4, ipv6):
        headers = {"X-Forwarded-For": client}
        for _ in range(LIMIT + 1):
            requests.post(
                f"{limited['ingestion']}/event",
                json=make_event(site_id=new_site_id()),
                headers=headers,
                timeout=TIMEOUT,
            )
        asked = requests.get(
            f"{limited['reporting']}/stats",
            params={"site_id": new_site_id(), "date": "2025-11-15"},
            headers=headers,
            timeout=TIMEOUT,
        )
        assert asked.status_code == 200
    store = redis.Redis.from_url(service_env["REDIS_URL"])
    contents, files = redis_contents(store), append_only_files(store)
    key = hashlib.blake2b(ADDRESS_KEY.encode()).digest()
    for written in (ipv4, ipv6, network, block):
        assert written.encode() not in contents, written
        assert written.encode() not in files, written
    for counted in (ipv4, network):
        assert keyed_hash(counted, key).encode() in contents  # counted, under the hash
