"""Keys: drawn at random, stored only as a hash, read from an `Authorization: Bearer` header.
Read keys are verified through a short in-process cache; server keys, which ingestion checks,
through the site registry's snapshot (app/access/registry.py).

A key is 256 random bits from `secrets`, so a plain SHA-256 of it is the right hash: a slow,
salted password hash (bcrypt, scrypt) exists to make guessing low-entropy passwords costly,
and nobody can enumerate 2**256 keys however fast the hash is. A fast hash also keeps
verification cheap on every reporting request, and an unsalted one lets the hash be the
stored document's `_id`, so a key is found by one read by `_id`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database
from pymongo.errors import PyMongoError

from app.store import sites
from app.store.sites import READ, SERVER, StoredKey

KEY_PREFIX = "ak_"
# A server key tells itself apart at a glance, in a config file or a secret scanner's report.
SERVER_KEY_PREFIX = "sk_"
PREFIXES = {READ: KEY_PREFIX, SERVER: SERVER_KEY_PREFIX}
KEY_BYTES = 32
KEY_ID_BYTES = 4
# Keys (and, apart, unknown tokens) a process remembers; past this, it forgets them all.
MAX_CACHED_KEYS = 10_000
# How long after its last verification an operator key is still trusted while MongoDB cannot
# be read: long enough for the alerts on an outage to fire from scrapes, short enough that a
# key revoked and not sent since is not trusted again in a later outage.
OUTAGE_TRUST_SECONDS = 15 * 60


@dataclass(frozen=True)
class NewKey:
    """A key just made: `secret` is shown once and never stored."""

    key_id: str
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header: the scheme in any case, the
    spaces around the token dropped, so that each spelling of a header names one key."""
    parts = (header or "").split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1].strip() or None


def create_key(db: Database[Any], site_id: str | None, kind: str = READ) -> NewKey:
    """Make a key of `kind` for `site_id` (None: an operator's read key) and store its hash."""
    while True:
        key = NewKey(
            key_id=secrets.token_hex(KEY_ID_BYTES), secret=PREFIXES[kind] + secrets.token_urlsafe(KEY_BYTES)
        )
        if sites.save_key(db, key.key_id, site_id, hash_key(key.secret), kind):
            return key


class KeyCache:
    """Read keys verified in this process, each trusted for `ttl` seconds before MongoDB is asked
    again: so a revoked key stops working within `ttl`. Tokens found to be no key are
    remembered as long, apart, so that one sent again and again (a dashboard left with a
    revoked key) costs no lookup each time; a key just made works at once all the same, its
    secret being new.

    While MongoDB cannot be read, an operator key this process verified within
    OUTAGE_TRUST_SECONDS is still trusted (a scrape of `/metrics` must answer through an
    outage, for its alerts to fire); any other token, site keys included, is refused as
    MongoDB's error, never trusted. Scrapes verify the operator's key again every `ttl` while
    MongoDB answers, so its trust is fresh when an outage begins, while a key revoked and not
    sent since soon falls out of it."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[StoredKey, float]] = {}
        self._unknown: dict[str, float] = {}
        self._last_verified: dict[str, tuple[StoredKey, float]] = {}
        self._lock = threading.Lock()

    def verify(
        self,
        db: Database[Any],
        secret: str,
        ttl: float,
        lookups: LookupBudget | None = None,
        client: str = "",
    ) -> StoredKey | None:
        """The read key whose secret is `secret`, or None if there is none, or if `lookups`
        allows `client` no lookup now for a token this process never verified."""
        return self.verify_hash(db, hash_key(secret), ttl, lookups, client)

    def verify_hash(
        self,
        db: Database[Any],
        digest: str,
        ttl: float,
        lookups: LookupBudget | None = None,
        client: str = "",
    ) -> StoredKey | None:
        """The read key whose secret hashes to `digest` (what the dashboard's session keeps,
        never the secret), or None if there is none."""
        now = time.monotonic()
        cached = self._known.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._unknown.get(digest, 0.0) > now:
            return None
        verified = self._last_verified.get(digest)
        if verified is None and lookups is not None and not lookups.take(now, client):
            return None
        try:
            key = sites.key_by_hash(db, digest)
        except PyMongoError:
            if verified is None or not _trusted_through_outage(*verified, now):
                raise
            return verified[0]
        with self._lock:
            if key is None:
                self._known.pop(digest, None)
                self._last_verified.pop(digest, None)
                _remember(self._unknown, digest, now + ttl, ttl)
            else:
                _remember(self._known, digest, (key, now + ttl), ttl)
                _remember(self._last_verified, digest, (key, now), ttl)
        return key

    def known(self, secret: str) -> bool:
        """Whether `secret` is a key this process verified and still trusts (no lookup)."""
        cached = self._known.get(hash_key(secret))
        return cached is not None and cached[1] > time.monotonic()


class LookupBudget:
    """At most `per_second` MongoDB lookups a second (and as many at once) per client for
    tokens a process never verified: so that made-up tokens sent to an endpoint no other limit
    covers cost MongoDB little, and one client's made-up tokens never use up another's lookups
    (an operator's new key after a restart), while keys verified before are checked again
    whenever due. At most MAX_CACHED_KEYS clients are followed, all forgotten when full."""

    def __init__(self, per_second: float) -> None:
        self._rate = per_second
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, now: float, client: str = "") -> bool:
        with self._lock:
            tokens, at = self._buckets.get(client, (self._rate, now))
            tokens = min(self._rate, tokens + (now - at) * self._rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                return False
            if client not in self._buckets and len(self._buckets) >= MAX_CACHED_KEYS:
                self._buckets.clear()
            self._buckets[client] = (tokens - 1, now)
            return True


def _trusted_through_outage(key: StoredKey, verified_at: float, now: float) -> bool:
    """Whether a key verified at `verified_at` is trusted while MongoDB cannot be read: an
    operator key verified lately, never a site's key."""
    return key.site_id is None and now - verified_at <= OUTAGE_TRUST_SECONDS


def _remember(entries: dict[str, Any], digest: str, entry: Any, ttl: float) -> None:
    if ttl <= 0:
        return
    if len(entries) >= MAX_CACHED_KEYS:
        entries.clear()
    entries[digest] = entry


key_cache = KeyCache()
