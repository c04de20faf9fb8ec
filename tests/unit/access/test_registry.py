import threading
import time
from contextlib import contextmanager

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from app.access import registry as registry_module
from app.access.registry import RegistryUnavailableError, SiteRegistry
from app.store.sites import RegisteredSite
from tools.processes import wait_until

A_TEST = RegisteredSite(domains=("a.test",))


class Source:
    """A registry source that can be changed or taken down."""

    def __init__(self, sites):
        self.sites = sites
        self.down = False
        self.loads = 0

    def __call__(self):
        self.loads += 1
        if self.down:
            raise ServerSelectionTimeoutError("MongoDB away")
        return dict(self.sites)


def look_up_at_once(registry, site_ids):
    """Look up each site in a thread of its own, all at once."""
    threads = [threading.Thread(target=registry.site, args=(site_id,)) for site_id in site_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_first_lookup_waits_for_the_first_load():
    registry = SiteRegistry(Source({"a.test": A_TEST}), interval=60)
    try:
        assert registry.site("a.test") == A_TEST
        assert registry.site("b.test") is None
    finally:
        registry.stop()


def test_a_change_is_seen_within_the_refresh_interval():
    source = Source({})
    registry = SiteRegistry(source, interval=0.05)
    try:
        assert registry.site("a.test") is None
        source.sites = {"a.test": A_TEST}
        wait_until(lambda: registry.site("a.test") is not None, 5, "the first load", 0.01)
    finally:
        registry.stop()


def test_the_last_snapshot_is_kept_while_mongodb_is_away():
    source = Source({"a.test": A_TEST})
    registry = SiteRegistry(source, interval=0.02)
    try:
        assert registry.site("a.test") is not None
        source.down = True
        loads = source.loads
        wait_until(lambda: source.loads > loads + 2, 5, "more loads", 0.01)
        assert registry.site("a.test") == A_TEST
    finally:
        registry.stop()


def test_without_a_first_load_a_lookup_fails_fast(monkeypatch):
    monkeypatch.setattr(registry_module, "FIRST_LOAD_WAIT_SECONDS", 0.1)
    source = Source({})
    source.down = True
    registry = SiteRegistry(source, interval=60)
    try:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError):
            registry.site("a.test")
        assert time.monotonic() - started < 1
    finally:
        registry.stop()


def test_lookups_of_known_sites_never_call_mongodb_themselves():
    source = Source({"a.test": A_TEST})
    registry = SiteRegistry(source, interval=60)
    try:
        registry.site("a.test")
        loads = source.loads
        look_up_at_once(registry, ["a.test"] * 20)
        assert source.loads == loads
    finally:
        registry.stop()


def test_start_loads_the_snapshot_before_any_lookup():
    source = Source({"a.test": A_TEST})
    registry = SiteRegistry(source, interval=60)
    try:
        assert registry.start().wait(5)
        assert source.loads == 1
        assert registry.start() is registry.start()  # one refresher a process
        assert registry.site("a.test") == A_TEST
        assert source.loads == 1
    finally:
        registry.stop()


@contextmanager
def running(source):
    """A registry of `source` with its first snapshot loaded, refreshed only on demand."""
    registry = SiteRegistry(source, interval=3600)
    try:
        assert registry.start().wait(5)
        yield registry
    finally:
        registry.stop()


def test_a_site_added_since_the_last_load_is_found_at_once():
    source = Source({})
    with running(source) as registry:
        source.sites = {"a.test": A_TEST}
        assert registry.site("a.test") == A_TEST


def test_unknown_sites_reload_the_registry_at_most_once_a_second(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: clock[0])
    source = Source({})
    with running(source) as registry:
        loads = source.loads
        look_up_at_once(registry, [f"made-up-{n}" for n in range(20)])
        assert source.loads == loads + 1
        clock[0] += registry_module.UNKNOWN_SITE_RELOAD_SECONDS
        assert registry.site("made-up-again") is None
        assert source.loads == loads + 2


def test_a_reload_that_fails_keeps_the_snapshot_and_answers():
    source = Source({"a.test": A_TEST})
    with running(source) as registry:
        source.down = True
        assert registry.site("b.test") is None
        assert registry.site("a.test") == A_TEST


UMAMI_ID = "50429a93-8479-4073-be80-d5d29c09c2ec"


def test_a_site_is_found_by_its_umami_website_id_and_its_server_keys_hash():
    site = RegisteredSite(("a.test",), server_keys=frozenset({"h"}), umami_id=UMAMI_ID)
    with running(Source({"a.test": site})) as registry:
        assert registry.site_by_umami_id(UMAMI_ID) == "a.test"
        assert registry.site_by_server_key("h") == "a.test"
        assert registry.site_by_umami_id("0f6a6bb1-7d36-4c55-9a7e-d5c1f1a0e0b2") is None
        assert registry.site_by_server_key("other") is None


def test_an_umami_id_or_server_key_added_since_the_last_load_is_found_at_once(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(registry_module.time, "monotonic", lambda: clock[0])
    source = Source({})
    with running(source) as registry:
        source.sites = {"a.test": RegisteredSite(("a.test",), umami_id=UMAMI_ID)}
        assert registry.site_by_umami_id(UMAMI_ID) == "a.test"
        clock[0] += registry_module.UNKNOWN_SITE_RELOAD_SECONDS
        source.sites = {"a.test": RegisteredSite(("a.test",), server_keys=frozenset({"h"}))}
        assert registry.site_by_server_key("h") == "a.test"


def test_a_site_is_found_by_its_domain_with_a_leading_www_dropped():
    """Plausible's clients name a site by domain (`d`), `www.` dropped on either side."""
    shop = RegisteredSite(domains=("www.shop.test", "shop.example"))
    with running(Source({"shop": shop, "a": A_TEST})) as registry:
        assert registry.site_for_domain("shop.test") == "shop"
        assert registry.site_for_domain("www.shop.test") == "shop"
        assert registry.site_for_domain("shop.example") == "shop"
        assert registry.site_for_domain("www.a.test") == "a"
        assert registry.site_for_domain("blog.shop.test") is None
        assert registry.site_for_domain("elsewhere.test") is None


def test_a_domain_two_sites_list_belongs_to_the_first_by_site_id():
    with running(Source({"b": A_TEST, "a": A_TEST})) as registry:
        assert registry.site_for_domain("a.test") == "a"


def test_a_domain_added_since_the_last_load_is_found_at_once():
    source = Source({})
    with running(source) as registry:
        source.sites = {"shop": RegisteredSite(domains=("shop.test",))}
        assert registry.site_for_domain("www.shop.test") == "shop"


def test_reloads_for_unknown_sites_never_overlap(monkeypatch):
    """Counted from a load's start, the once-a-second limit let made-up site ids start a full
    load every second while slower ones still ran, piling loads on a store already slow."""
    monkeypatch.setattr(registry_module, "UNKNOWN_SITE_RELOAD_SECONDS", 0.1)
    running, most = 0, 0
    lock = threading.Lock()

    def slow_load():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.5)  # five times the reload interval
        with lock:
            running -= 1
        return {"a": RegisteredSite(domains=("a.test",))}

    registry = SiteRegistry(slow_load, interval=3600)
    registry.refresh()
    registry.start().set()
    threads = [threading.Thread(target=registry.site, args=(f"forged-{n}",)) for n in range(30)]
    for thread in threads:
        thread.start()
        time.sleep(0.03)
    for thread in threads:
        thread.join()
    registry.stop()
    assert most <= 2  # the background refresher's load and one for unknown sites
