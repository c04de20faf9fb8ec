"""The registered sites as ingestion sees them: an in-process snapshot of each site's domains,
whether its servers need a key, its server keys' hashes and its Umami website id.

Ingestion answers from memory, never waiting for MongoDB (so a flood of made-up server keys
costs no lookup): each process reloads the whole registry every REGISTRY_REFRESH_SECONDS in a
background thread (a greenlet under gunicorn's gevent workers), so a site or key added,
changed or removed takes effect within that interval. When MongoDB cannot be read the last
good snapshot stays in force. Only a process's first requests wait, for its first load, and
get a 503 if it does not come in time.

A site the snapshot does not know (by id, Umami website id or server key) makes the process
load the registry again at once, at most once a second: a site registered a moment ago
(`make site`) has its first event accepted, while made-up site ids or keys cost a process at
most one load a second.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from app.store.sites import RegisteredSite

logger = logging.getLogger(__name__)

Load = Callable[[], Mapping[str, RegisteredSite]]
Found = TypeVar("Found")
# How long a process's first requests wait for its first snapshot: within the 2 s the
# contract gives a client to learn that it should retry.
FIRST_LOAD_WAIT_SECONDS = 1.5
# The least time between two loads a process makes for sites it did not know.
UNKNOWN_SITE_RELOAD_SECONDS = 1.0


def without_www(domain: str) -> str:
    return domain.removeprefix("www.")


def domain_index(sites: Mapping[str, RegisteredSite]) -> dict[str, str]:
    """Each domain, without its leading `www.`, to the first site id listing it."""
    index: dict[str, str] = {}
    for site_id in sorted(sites):
        for domain in sites[site_id].domains:
            index.setdefault(without_www(domain), site_id)
    return index


class RegistryUnavailableError(Exception):
    """This process has not loaded the registry yet and MongoDB did not answer in time."""


class SiteRegistry:
    def __init__(self, load: Load, interval: float) -> None:
        self._load = load
        self._interval = interval
        self._sites: Mapping[str, RegisteredSite] = {}
        self._umami_sites: Mapping[str, str] = {}
        self._key_sites: Mapping[str, str] = {}
        self._by_domain: Mapping[str, str] = {}
        self._loaded_at: float | None = None
        # Made on first use in each process, never before a fork: threads do not survive a
        # fork, and gevent patches `threading` only in the forked worker.
        self._pid = 0
        self._loaded: threading.Event | None = None
        self._stopped = False
        self._reloaded_for_unknown = float("-inf")

    def site(self, site_id: str) -> RegisteredSite | None:
        """What is registered of `site_id`, or None if it is not registered."""
        return self._find(lambda: self._sites.get(site_id))

    def site_for_domain(self, domain: str) -> str | None:
        """The id of the site one of whose domains is `domain`, a leading `www.` dropped on
        both sides (as Plausible finds a site); of two such sites, the first by site id."""
        return self._find(lambda: self._by_domain.get(without_www(domain)))

    def site_by_umami_id(self, umami_id: str) -> str | None:
        """The id of the site registered with this Umami website id, or None."""
        return self._find(lambda: self._umami_sites.get(umami_id))

    def site_by_server_key(self, key_hash: str) -> str | None:
        """The id of the site whose server key has this hash, or None (Segment's SDKs name a
        site only by its write key)."""
        return self._find(lambda: self._key_sites.get(key_hash))

    def _find(self, look: Callable[[], Found | None]) -> Found | None:
        """`look()` in the snapshot; when it finds nothing, again in a snapshot reloaded now,
        at most once every UNKNOWN_SITE_RELOAD_SECONDS, so that a site, Umami id or key just
        registered is known at once."""
        loaded = self.start()
        if not loaded.is_set() and not loaded.wait(FIRST_LOAD_WAIT_SECONDS):
            raise RegistryUnavailableError("The site registry (MongoDB) has not answered yet")
        found = look()
        if found is None and self._may_reload_for_unknown():
            try:
                self.refresh()
            except Exception as error:  # the snapshot in force answers, as when the refresher fails
                logger.warning("Site registry not reloaded for an unknown site (%s) (%s)", error, self._age())
            finally:  # the next one a full interval after this one's end: a slow store never piles loads
                self._reloaded_for_unknown = time.monotonic()
            found = look()
        return found

    def _may_reload_for_unknown(self) -> bool:
        now = time.monotonic()
        if now - self._reloaded_for_unknown < UNKNOWN_SITE_RELOAD_SECONDS:
            return False
        self._reloaded_for_unknown = math.inf  # until this load ends, no other request loads
        return True

    def refresh(self) -> None:
        """Load the registry now; if that fails, the last snapshot stays and the error is raised."""
        sites = self._load()
        self._umami_sites = {site.umami_id: site_id for site_id, site in sites.items() if site.umami_id}
        self._key_sites = {key: site_id for site_id, site in sites.items() for key in site.server_keys}
        self._by_domain = domain_index(sites)
        self._sites = sites
        self._loaded_at = time.monotonic()
        if self._loaded is not None:
            self._loaded.set()

    def stop(self) -> None:
        """End this process's refresher after its current rest."""
        self._stopped = True

    def start(self) -> threading.Event:
        """Start this process's refresher unless it runs; the event is set once a snapshot is
        loaded. Gunicorn calls it when a worker starts (gunicorn.conf.py), so that no request
        waits for the first load; the first lookup would otherwise."""
        if self._loaded is not None and self._pid == os.getpid():
            return self._loaded
        self._pid = os.getpid()
        self._loaded = threading.Event()
        self._loaded_at = None
        threading.Thread(target=self._refresh_forever, name="site-registry", daemon=True).start()
        return self._loaded

    def _age(self) -> str:
        return (
            "none loaded yet"
            if self._loaded_at is None
            else f"{time.monotonic() - self._loaded_at:.0f} s old"
        )

    def _refresh_forever(self) -> None:
        while not self._stopped:
            try:
                self.refresh()
            except Exception as error:  # any failure: a refresher that died would go stale unseen
                logger.warning(
                    "Site registry not refreshed (%s); keeping the last one (%s)", error, self._age()
                )
            time.sleep(self._interval)
