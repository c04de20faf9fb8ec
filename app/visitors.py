"""Visitors without cookies: who an event counts as, and the daily id of a visitor who sends
no `user_id`, derived in ingestion so that the address never leaves it (docs/visitors.md).

A visitor's id is a keyed hash (BLAKE2b) of the site, the visitor's address and user agent,
keyed with a random salt of the UTC day. The salts live in Redis, one per day, created by
whichever process needs it first (SET NX) and deleted by Redis two days after their day's
end; no one can compute a past day's ids once its salt is gone, nor link two days' ids.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import redis

SALT_PREFIX = "analytics:visitor-salt"
SALT_BYTES = 32
# A day's salt outlives its day by this much, so that the previous day's is there on the next.
SALT_KEPT_AFTER_DAY = timedelta(hours=48)
VISITOR_ID_BYTES = 16
# A visit ends after this long without an event: for this long after UTC midnight a visitor
# is also named by the previous day's salt, so that a visit across midnight can go on.
VISIT_GAP = timedelta(minutes=30)
SEPARATOR = b"\x1f"


def identity(event: Mapping[str, Any]) -> str | None:
    """Who an event counts as in unique users: its `user_id`, else its `visitor_id`."""
    return event.get("user_id") or event.get("visitor_id") or None


def visitor_id(salt: bytes, site_id: str, address: str, user_agent: str) -> str:
    """The id of the visitor at `address` with `user_agent` on `site_id`, under `salt`."""
    data = SEPARATOR.join(part.encode("utf-8", "surrogatepass") for part in (site_id, address, user_agent))
    return hashlib.blake2b(data, key=salt, digest_size=VISITOR_ID_BYTES).hexdigest()


def salt_key(day: date) -> str:
    return f"{SALT_PREFIX}:{day.isoformat()}"


def salt_expiry(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(), UTC) + SALT_KEPT_AFTER_DAY


def fetch_salt(client: redis.Redis, day: date) -> bytes:
    """The salt of `day`, made now if no process has made it yet: the first SET wins, and
    every process reads the winner's."""
    pipe = client.pipeline(transaction=True)
    pipe.set(salt_key(day), secrets.token_bytes(SALT_BYTES), nx=True, exat=salt_expiry(day))
    pipe.get(salt_key(day))
    salt: bytes = pipe.execute()[1]
    return salt


@dataclass
class DailySalt:
    """Today's salt and the previous day's as one process remembers them: Redis is asked
    once a day per process."""

    day: date | None = None
    salt: bytes = b""
    previous_salt: bytes | None = None

    def today(self, client: redis.Redis, now: datetime | None = None) -> bytes:
        day = (now or datetime.now(UTC)).date()
        if day != self.day:
            self.salt = fetch_salt(client, day)
            # Only read: a salt made now for a past day would name no one.
            self.previous_salt = client.get(salt_key(day - timedelta(days=1)))
            self.day = day
        return self.salt

    def visitor_ids(
        self, client: redis.Redis, site_id: str, address: str, user_agent: str, now: datetime | None = None
    ) -> tuple[str, str | None]:
        """The visitor's id of today and, within VISIT_GAP after midnight, of the previous day
        (None otherwise, or once the previous day's salt is gone)."""
        now = now or datetime.now(UTC)
        current = visitor_id(self.today(client, now), site_id, address, user_agent)
        since_midnight = now - datetime.combine(now.date(), time(), UTC)
        if self.previous_salt is None or since_midnight >= VISIT_GAP:
            return current, None
        return current, visitor_id(self.previous_salt, site_id, address, user_agent)
