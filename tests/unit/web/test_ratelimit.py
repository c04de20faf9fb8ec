"""Rate limits (app/web/ratelimit.py): per address and per site on ingestion, per key on reporting."""

import json
from dataclasses import replace

import pytest

from app import create_app
from app.access import keys
from app.ingestion import bodies, local_counts
from app.ingestion.rate_limits import COUNT_WINDOWS
from app.ingestion.views import watch
from app.queue import QUEUE
from app.queue import publish as queue_publish
from app.web import client_address as client_addresses
from app.web.client_address import client_address, keyed_hash, limited_address, parse_networks
from app.web.ratelimit import KEY_PREFIX
from tools.factories import make_event

NO_LIMITS = {
    "ingestion_rate_limit": "off",
    "ingestion_event_rate_limit": "off",
    "site_rate_limit": "off",
    "reporting_rate_limit": "off",
}


@pytest.fixture
def limited(settings, db, counter_store, monkeypatch):
    """A client of a service built with the given limits (the others off)."""

    apps = []

    def client(service, **limits):
        app = create_app(service, replace(settings, **{**NO_LIMITS, **limits}))
        if service == "ingestion":
            monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
            # What is admitted stops at the queue: stored eagerly in mongomock, a batch of 500
            # would take long enough to roll a one-second window over between two requests.
            monkeypatch.setattr(queue_publish, "publish", lambda messages, batch_id: None)
            apps.append(app)
        return app.test_client()

    yield client
    for app in apps:  # their sync threads
        local = app.extensions["ingestion_limits"].local
        if local is not None:
            local.stop()


def post(client, body, address="198.51.100.7", path="/event", **headers):
    return client.post(
        path, data=json.dumps(body), content_type="application/json",
        environ_base={"REMOTE_ADDR": address}, headers=headers,
    )  # fmt: skip


def assert_rate_limited(response, limit):
    assert response.status_code == 429
    body = response.get_json()
    assert body["status"] == "error"
    assert "Rate limit exceeded" in body["message"]
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(response.headers["RateLimit-Reset"]) <= 60
    assert response.headers["Retry-After"] == response.headers["RateLimit-Reset"]


def test_an_address_over_its_rate_gets_429_with_the_standard_headers(limited):
    ingestion = limited("ingestion", ingestion_rate_limit="2/minute")
    assert [post(ingestion, make_event()).status_code for _ in range(2)] == [200, 200]
    assert_rate_limited(post(ingestion, make_event()), 2)
    assert post(ingestion, make_event(), address="198.51.100.8").status_code == 200


def test_bots_count_against_the_address_limit_like_anyone(limited):
    """A bot's event is dropped, yet it is answered as anyone's: 429 once over the rate."""
    ingestion = limited("ingestion", ingestion_rate_limit="2/minute")
    bot = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)", "Origin": "https://shop.test"}
    assert [post(ingestion, make_event(), **bot).status_code for _ in range(2)] == [200, 200]
    assert_rate_limited(post(ingestion, make_event(), **bot), 2)


def test_batches_count_against_the_same_address_limit(limited):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute")
    assert post(ingestion, [make_event()], path="/events").status_code == 200
    assert_rate_limited(post(ingestion, make_event()), 1)


def test_forwarded_for_is_ignored_without_trusted_proxies(limited):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute")
    assert post(ingestion, make_event(), **{"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert post(ingestion, make_event(), **{"X-Forwarded-For": "203.0.113.2"}).status_code == 429


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(limited):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute", trusted_proxies="10.0.0.0/8")
    proxy = "10.1.2.3"
    first = {"X-Forwarded-For": "203.0.113.1"}
    assert post(ingestion, make_event(), address=proxy, **first).status_code == 200
    assert post(ingestion, make_event(), address=proxy, **first).status_code == 429
    assert (
        post(ingestion, make_event(), address=proxy, **{"X-Forwarded-For": "203.0.113.2"}).status_code == 200
    )


def test_one_site_over_its_rate_gets_429_whatever_the_address(limited):
    ingestion = limited("ingestion", site_rate_limit="3/minute")
    busy, other = make_event(site_id="busy.example"), make_event(site_id="other.example")
    assert post(ingestion, busy, address="198.51.100.1").status_code == 200
    # A batch counts a request for each site it carries.
    assert post(ingestion, [busy, busy, other], address="198.51.100.2", path="/events").status_code == 200
    assert post(ingestion, busy, address="198.51.100.3").status_code == 200
    assert_rate_limited(post(ingestion, busy, address="198.51.100.4"), 3)
    assert post(ingestion, other).status_code == 200


def test_reporting_limits_each_key_and_each_address_without_one(limited):
    reporting = limited("reporting", reporting_rate_limit="2/minute")

    def stats(address="198.51.100.7", **headers):
        return reporting.get(
            "/stats?site_id=s&date=2025-11-15", environ_base={"REMOTE_ADDR": address}, headers=headers
        )

    assert [stats(Authorization="Bearer one").status_code for _ in range(2)] == [200, 200]
    assert_rate_limited(stats(Authorization="Bearer one"), 2)
    assert stats(Authorization="Bearer two").status_code == 200  # same address, another key
    assert [stats().status_code for _ in range(2)] == [200, 200]
    assert stats().status_code == 429


def test_servers_cannot_use_up_the_budget_of_a_sites_pages(limited):
    """A site has a window for pages (Origin or Referer) and one for servers (neither): the
    forger's curl loop without an Origin leaves the site's visitors their rate."""
    ingestion = limited("ingestion", site_rate_limit="2/minute")
    event = make_event(site_id="busy.example")
    assert [post(ingestion, event, address=f"198.51.100.{n}").status_code for n in range(2)] == [200, 200]
    assert_rate_limited(post(ingestion, event, address="198.51.100.3"), 2)
    page = {"Origin": "https://busy.example"}
    assert [post(ingestion, event, address=f"203.0.113.{n}", **page).status_code for n in range(2)] == [
        200
    ] * 2
    assert_rate_limited(post(ingestion, event, address="203.0.113.3", **page), 2)


def test_an_ipv6_client_is_counted_by_its_64(limited):
    """One subscriber holds a whole /64: rotating addresses inside it gains nothing."""
    ingestion = limited("ingestion", ingestion_rate_limit="2/minute")
    statuses = [post(ingestion, make_event(), address=f"2001:db8:1:2::{n}").status_code for n in (1, 2)]
    assert statuses == [200, 200]
    assert_rate_limited(post(ingestion, make_event(), address="2001:db8:1:2:ffff:ffff:ffff:9"), 2)
    assert post(ingestion, make_event(), address="2001:db8:1:3::1").status_code == 200


def test_a_clients_full_address_is_not_kept_once_hashed(ingestion_app):
    """docs/visitors.md: the address is read for the hash and dropped. The hashes a process
    remembers are of the limited address: two addresses of one /64 are one entry."""
    hashed = client_addresses.hashed_address
    hashed.cache_clear()
    ingestion = ingestion_app.test_client()
    for address in ("2001:db8::7", "2001:db8::8"):
        ingestion.post("/event", json=make_event(), environ_base={"REMOTE_ADDR": address})
    assert (hashed.cache_info().currsize, hashed.cache_info().hits) == (1, 1)


def test_reporting_counts_an_ipv6_client_by_its_64(limited):
    reporting = limited("reporting", reporting_rate_limit="1/minute")
    stats = "/stats?site_id=s&date=2025-11-15"
    assert reporting.get(stats, environ_base={"REMOTE_ADDR": "2001:db8:1:2::1"}).status_code == 200
    assert_rate_limited(reporting.get(stats, environ_base={"REMOTE_ADDR": "2001:db8:1:2::2"}), 1)


def stats_with(client, authorization, address="198.51.100.7"):
    return client.get(
        "/stats?site_id=s&date=2025-11-15",
        environ_base={"REMOTE_ADDR": address},
        headers={"Authorization": authorization},
    )


def test_one_key_however_spelt_has_one_reporting_bucket(limited):
    reporting = limited("reporting", reporting_rate_limit="2/minute")
    assert stats_with(reporting, "Bearer K").status_code == 200
    assert stats_with(reporting, "bearer  K").status_code == 200
    assert_rate_limited(stats_with(reporting, "BEARER K"), 2)


def test_made_up_tokens_share_their_addresss_reporting_bucket_and_a_verified_key_has_its_own(limited, db):
    """With AUTH_MODE=keys a token has a bucket of its own once this process has verified
    it: each made-up token would otherwise be a fresh bucket, and a MongoDB lookup."""
    reporting = limited("reporting", reporting_rate_limit="3/minute", auth_mode="keys")
    key = keys.create_key(db, "s").secret
    assert stats_with(reporting, f"Bearer {key}").status_code == 200  # verified: counted on the address
    assert [stats_with(reporting, f"Bearer ak_made-up-{n}").status_code for n in range(2)] == [401, 401]
    assert_rate_limited(stats_with(reporting, "Bearer ak_made-up-2"), 3)
    assert_rate_limited(stats_with(reporting, "Basic Sw=="), 3)
    assert stats_with(reporting, f"Bearer {key}").status_code == 200
    assert stats_with(reporting, "Bearer ak_made-up-3", address="198.51.100.8").status_code == 401


def test_health_is_never_rate_limited(limited):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute")
    assert [ingestion.get("/health").status_code for _ in range(3)] == [200, 200, 200]


def test_when_the_limits_redis_is_down_requests_pass(limited, redis_server):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute", site_rate_limit="1/minute")
    redis_server.connected = False
    assert [post(ingestion, make_event()).status_code for _ in range(3)] != [500] * 3
    assert {post(ingestion, make_event()).status_code for _ in range(3)} <= {200, 429}


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "client"),
    [
        ("10.0.0.1", None, "", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.9", "", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.9", "10.0.0.1", "203.0.113.9"),
        ("10.0.0.1", "1.2.3.4, 203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9, 10.0.0.7", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.1", "10.0.0.8, 10.0.0.7", "10.0.0.0/8", "10.0.0.8"),
        ("10.0.0.1", "not-an-address, 203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.1", "203.0.113.9, garbage", "10.0.0.0/8", "10.0.0.1"),
        ("192.0.2.1", "203.0.113.9", "10.0.0.0/8", "192.0.2.1"),
        ("::1", "2001:db8::5", "::1", "2001:db8::5"),
    ],
)
def test_the_client_is_the_rightmost_forwarded_address_not_a_trusted_proxy(
    remote, forwarded, trusted, client
):
    assert client_address(remote, forwarded, parse_networks(trusted)) == client


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4 in IPv6's clothes is IPv4
        ("", ""),
    ],
)
def test_rate_limits_count_an_ipv6_client_by_its_64(address, counted):
    assert limited_address(address) == counted


def test_a_client_is_counted_under_its_deployment_s_keyed_hash_of_its_address():
    """The same for every process of a deployment (one key), another for another key, and
    never the address."""
    ours, theirs = b"k" * 64, b"t" * 64
    counted = keyed_hash("203.0.113.9", ours)
    assert counted == keyed_hash("203.0.113.9", ours) != keyed_hash("203.0.113.9", theirs)
    assert counted != keyed_hash("203.0.113.10", ours)
    assert "203.0.113" not in counted
    assert len(counted) == 32


def test_a_malformed_trusted_proxy_names_the_setting():
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_networks("10.0.0.0/8, proxy.internal")


def limit_calls(counter_store, monkeypatch):
    """The Redis commands that touch the rate-limit counters, as they are sent."""
    calls = []
    execute = counter_store.execute_command

    def counting(*args, **options):
        if any(KEY_PREFIX in str(arg) for arg in args):
            calls.append(args[0])
        return execute(*args, **options)

    monkeypatch.setattr(counter_store, "execute_command", counting)
    return calls


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/event", make_event()),
        ("/events", [make_event(site_id="one.example"), make_event(site_id="two.example")]),
    ],
)
def test_a_request_counts_its_address_and_its_sites_in_one_redis_call(
    limited, counter_store, monkeypatch, path, body
):
    ingestion = limited("ingestion", ingestion_rate_limit="100/minute", site_rate_limit="100/minute")
    assert post(ingestion, make_event()).status_code == 200  # Redis loads the scripts once
    calls = limit_calls(counter_store, monkeypatch)
    assert post(ingestion, body, path=path).status_code == 200
    assert len(calls) == 1


def test_a_request_refused_for_back_pressure_uses_none_of_its_quota(limited, counter_store):
    ingestion = limited(
        "ingestion", ingestion_rate_limit="1/minute", site_rate_limit="1/minute", queue_high_water=1
    )
    counter_store.lpush(QUEUE, b"{}")
    watch.refresh()  # what the watch thread does twice a second
    assert post(ingestion, make_event()).status_code == 503
    counter_store.delete(QUEUE)
    watch.refresh()
    assert post(ingestion, make_event()).status_code == 200


def test_an_address_over_its_rate_uses_none_of_its_sites_quota(limited):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute", site_rate_limit="2/minute")
    event = make_event(site_id="busy.example")
    assert [post(ingestion, event).status_code for _ in range(3)] == [200, 429, 429]
    assert post(ingestion, event, address="198.51.100.8").status_code == 200


def test_a_refused_request_uses_its_addresss_quota(limited):
    """A request refused for its content cost a read, maybe an inflate, a parse and a
    validation: it is counted like any other, so repeating it is not free."""
    ingestion = limited("ingestion", ingestion_rate_limit="2/minute")
    assert post(ingestion, {"site_id": "s"}).status_code == 400
    assert post(ingestion, make_event(), path="/events", **{"Content-Encoding": "br"}).status_code == 415
    assert_rate_limited(post(ingestion, make_event()), 2)
    assert post(ingestion, make_event(), address="198.51.100.8").status_code == 200


def test_an_address_over_its_rate_is_refused_before_its_body_is_read(limited, monkeypatch):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute")
    assert post(ingestion, [{"site_id": "s"}], path="/events").status_code == 400
    assert_rate_limited(post(ingestion, [{"site_id": "s"}], path="/events"), 1)  # the one over
    read = []

    def read_body(limit):
        read.append(limit)
        return b"{}"

    monkeypatch.setattr(bodies, "read_body", read_body)
    garbage = ingestion.post(
        "/events", data=b"not gzip", content_type="application/json",
        environ_base={"REMOTE_ADDR": "198.51.100.7"}, headers={"Content-Encoding": "gzip"},
    )  # fmt: skip
    assert_rate_limited(garbage, 1)
    assert read == []


def test_a_refused_request_uses_none_of_its_sites_quota(limited):
    ingestion = limited("ingestion", site_rate_limit="1/minute")
    assert post(ingestion, make_event(timestamp="yesterday")).status_code == 400
    assert post(ingestion, make_event()).status_code == 200


def test_a_refused_request_counts_in_one_redis_call_and_a_request_over_its_rate_in_none(
    limited, counter_store, monkeypatch
):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute")
    assert post(ingestion, make_event(), address="198.51.100.9").status_code == 200  # Redis loads the script
    calls = limit_calls(counter_store, monkeypatch)
    assert post(ingestion, {"site_id": "s"}).status_code == 400
    assert len(calls) == 1
    assert post(ingestion, make_event()).status_code == 429  # counted: over, and its reset read
    counted = len(calls)
    assert [post(ingestion, make_event()).status_code for _ in range(3)] == [429] * 3
    assert len(calls) == counted


def test_counters_in_each_process_memory_keep_the_same_limits(limited):
    ingestion = limited(
        "ingestion",
        ingestion_rate_limit="1/minute",
        site_rate_limit="2/minute",
        rate_limit_storage_url="memory://",
    )
    event = make_event(site_id="busy.example")
    assert [post(ingestion, event).status_code for _ in range(2)] == [200, 429]
    assert post(ingestion, event, address="198.51.100.8").status_code == 200
    assert_rate_limited(post(ingestion, event, address="198.51.100.9"), 2)


def test_when_the_counters_redis_fails_the_limits_pause_instead_of_waiting_on_it(
    limited, counter_store, redis_server, monkeypatch
):
    ingestion = limited("ingestion", ingestion_rate_limit="1/minute", site_rate_limit="1/minute")
    calls = limit_calls(counter_store, monkeypatch)
    redis_server.connected = False
    assert [post(ingestion, make_event()).status_code for _ in range(3)] == [200] * 3
    assert len(calls) == 1


def test_a_forgers_batches_cost_a_sites_budget_a_request_each(limited):
    """Two forged 500-event batches with the site's Origin must not leave its visitors 429s."""
    ingestion = limited("ingestion", ingestion_rate_limit="200/second", site_rate_limit="1000/second")
    page = {"Origin": "https://busy.example"}
    batch = [make_event(site_id="busy.example") for _ in range(500)]
    assert [post(ingestion, batch, path="/events", **page).status_code for _ in range(2)] == [200, 200]
    beacon = make_event(site_id="busy.example")
    assert post(ingestion, beacon, address="203.0.113.9", **page).status_code == 200


@pytest.mark.parametrize("storage", ["", "memory://"])
@pytest.mark.parametrize("limit", ["550/minute", "550/second"])  # counted in Redis, in process
def test_an_addresss_events_bound_what_it_queues(limited, storage, limit):
    """An address's batches fill the shared queue no faster than its event window, and a batch
    refused for it is not charged its events."""
    ingestion = limited("ingestion", rate_limit_storage_url=storage, ingestion_event_rate_limit=limit)
    batch = [make_event(site_id="busy.example") for _ in range(500)]
    assert post(ingestion, batch, path="/events").status_code == 200
    assert_rate_limited(post(ingestion, batch, path="/events"), 550)
    assert post(ingestion, batch, path="/events", address="198.51.100.8").status_code == 200
    assert post(ingestion, batch[:50], path="/events").status_code == 200  # the refused 500 were not charged
    assert_rate_limited(post(ingestion, batch[:1], path="/events"), 550)


def test_an_event_limit_that_could_never_admit_a_batch_refuses_to_start(limited):
    with pytest.raises(ValueError, match="INGESTION_EVENT_RATE_LIMIT"):
        limited("ingestion", ingestion_event_rate_limit="499/second")


@pytest.fixture
def no_background_sync(monkeypatch):
    """The background sync of counts kept in process waits for the test to call it."""
    monkeypatch.setattr(local_counts, "SYNC_SECONDS", 3600.0)


def limits_of(client):
    return client.application.extensions["ingestion_limits"]


def test_each_apps_window_keys_are_remembered_by_its_own_limits(limited):
    """Not in a module-wide cache, which would keep every app's Redis storage alive."""
    first, second = (limited("ingestion", ingestion_rate_limit="100/second") for _ in range(2))
    for _ in range(2):
        assert post(first, make_event()).status_code == 200
    assert limits_of(first).window_key.cache_info()[:2] == (1, 1)  # hits, misses: one key
    assert limits_of(second).window_key.cache_info().currsize == 0


def test_windows_of_large_limits_are_counted_in_process_and_synced_in_the_background(
    limited, counter_store, monkeypatch, no_background_sync
):
    ingestion = limited("ingestion", ingestion_rate_limit="100/second", site_rate_limit="100/second")
    assert post(ingestion, make_event(site_id="s")).status_code == 200
    limits_of(ingestion).local.sync()  # Redis loads the script once
    calls = limit_calls(counter_store, monkeypatch)
    assert [post(ingestion, make_event(site_id="s")).status_code for _ in range(3)] == [200] * 3
    assert calls == []  # no round trip a request
    limits_of(ingestion).local.sync()
    assert len(calls) == 1  # one call a sync, for every window counted since the last
    assert sorted(int(counter_store.get(key)) for key in counter_store.keys(f"{KEY_PREFIX}*")) == [4, 4]


def test_counts_kept_in_process_refuse_with_the_standard_429(limited, no_background_sync):
    ingestion = limited("ingestion", ingestion_rate_limit="20/second")
    assert [post(ingestion, make_event()).status_code for _ in range(20)] == [200] * 20
    assert_rate_limited(post(ingestion, make_event()), 20)
    assert post(ingestion, make_event(), address="198.51.100.8").status_code == 200


def test_what_other_processes_counted_is_learned_at_each_sync(limited, counter_store, no_background_sync):
    ingestion = limited("ingestion", ingestion_rate_limit="20/second")
    assert post(ingestion, make_event()).status_code == 200
    (key,) = counter_store.keys(f"{KEY_PREFIX}*") or [None]
    assert key is None  # not synced yet
    limits_of(ingestion).local.sync()
    (key,) = counter_store.keys(f"{KEY_PREFIX}*")
    counter_store.incrby(key, 18)  # the other processes' requests
    limits_of(ingestion).local.sync()  # nothing new here: nothing sent, nothing learned
    assert post(ingestion, make_event()).status_code == 200
    limits_of(ingestion).local.sync()  # sends it, learns the 20
    assert_rate_limited(post(ingestion, make_event()), 20)


def test_when_a_sync_fails_the_limits_pause(
    limited, redis_server, counter_store, monkeypatch, no_background_sync
):
    """Paused, requests neither wait on a Redis that failed nor are refused."""
    ingestion = limited("ingestion", ingestion_rate_limit="100/second")
    assert [post(ingestion, make_event()).status_code for _ in range(3)] == [200] * 3
    redis_server.connected = False
    limits_of(ingestion).local.sync()
    calls = limit_calls(counter_store, monkeypatch)
    assert [post(ingestion, make_event()).status_code for _ in range(120)] == [200] * 120
    assert calls == []


def test_small_limits_are_still_counted_exactly_in_redis(limited, counter_store, monkeypatch):
    """A limit of less than a request per IN_PROCESS_SECONDS would be swamped by a lease
    each process admits: such windows go to Redis on every request."""
    ingestion = limited("ingestion", ingestion_rate_limit="100/minute")
    counter_store.script_load(COUNT_WINDOWS)  # Redis has the script: one call a count
    calls = limit_calls(counter_store, monkeypatch)
    assert [post(ingestion, make_event()).status_code for _ in range(3)] == [200] * 3
    assert calls == ["EVALSHA"] * 3


def test_windows_past_what_a_process_holds_are_counted_in_redis(
    limited, counter_store, monkeypatch, no_background_sync
):
    """A forger's many addresses must not grow a process's windows, and its syncs, without end."""
    monkeypatch.setattr(local_counts, "MAX_WINDOWS", 1)
    ingestion = limited("ingestion", ingestion_rate_limit="100/second")
    assert post(ingestion, make_event()).status_code == 200
    counter_store.script_load(COUNT_WINDOWS)  # Redis has the script: one call a count
    calls = limit_calls(counter_store, monkeypatch)
    assert post(ingestion, make_event()).status_code == 200  # its window is held
    assert calls == []
    assert post(ingestion, make_event(), address="198.51.100.8").status_code == 200
    assert len(calls) == 1  # counted in Redis
