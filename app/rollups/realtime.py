"""The last few minutes of each site, kept in Redis by the workers for `/stats/realtime`.

Rollups are hourly, so they cannot answer "the last five minutes". Workers add each stored
event with a timestamp in the recent past, or ahead of the clock as far as ingestion accepts
(EVENT_MAX_AHEAD_SECONDS), to two sorted sets per site: event ids scored by timestamp, and
user ids scored by their latest timestamp. Adding the same event again (a redelivered batch)
changes nothing, so the counts stay exact.

Both bounds keep the sets bounded in time: no event further ahead is kept (it would count as
now for as long as the sets live), and each write trims what is too old and sets the keys to
expire once the furthest event ahead has left the window.

They are bounded in size too, whatever clients send: members are 8-byte digests (blake2b) of
the event and user ids, not the ids (a user id may take 256 characters), and each set keeps
at most MAX_PER_SITE members. Counts stay exact below the cap but for a digest collision: for
n members, a chance below n²/2⁶⁵ (under 10⁻¹¹ at the cap). A site with more events, or users,
in the last KEEP_SECONDS than the cap is answered at most the cap, and told so (`capped`).
Over the cap, members dated ahead of the clock go first, the furthest ahead first, and only
then the oldest: otherwise a sender of timestamps ahead of the clock would keep the highest
scores and push every real member out.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from app.visitors import identity

WINDOW_SECONDS = 300
# Kept a little longer than the window so a late write of a recent event still counts.
KEEP_SECONDS = 2 * WINDOW_SECONDS
PREFIX = "analytics:realtime"
# Members each set of a site keeps, the latest: a sorted set's entry takes about 115 bytes of
# Redis, so a site's two sets stay near 2.3 MB however many ids a forger sends. A site with
# more events in KEEP_SECONDS (17 a second) is answered at most this many.
MAX_PER_SITE = 10_000
DIGEST_BYTES = 8
# KEYS[1] a site's sorted set; ARGV: now, the cap. Trims the set to the cap as the docstring
# above says.
TRIM_TO_CAP = """
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess <= 0 then return 0 end
local ahead = math.min(excess, redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf'))
if ahead > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], -ahead, -1) end
if excess > ahead then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - ahead - 1) end
return excess
"""
CALENDAR_END = datetime.max.replace(tzinfo=UTC).timestamp()


def _keys(site_id: str) -> tuple[str, str]:
    return f"{PREFIX}:{site_id}:events", f"{PREFIX}:{site_id}:users"


def record(
    pipe: redis.client.Pipeline,
    events: Iterable[Mapping[str, Any]],
    max_ahead_seconds: int,
    now: float | None = None,
) -> None:
    """Add 'remember these stored events if recent' to the pipeline's commands: those of the
    last KEEP_SECONDS, and those up to `max_ahead_seconds` (ingestion's EVENT_MAX_AHEAD_SECONDS)
    ahead of the clock."""
    now = now or time.time()
    oldest, latest = now - KEEP_SECONDS, now + max_ahead_seconds
    by_site: dict[str, list[tuple[str, str | None, float]]] = {}
    for event in events:
        moment = event["timestamp"].timestamp()
        if oldest <= moment <= latest:
            by_site.setdefault(event["site_id"], []).append((event["event_id"], identity(event), moment))
    for site_id, recent in by_site.items():
        events_key, users_key = _keys(site_id)
        pipe.zadd(events_key, {_digest(event_id): moment for event_id, _, moment in recent})
        users: dict[bytes, float] = {}
        for _, user_id, moment in recent:
            if user_id:
                member = _digest(user_id)
                users[member] = max(moment, users.get(member, moment))
        if users:
            pipe.zadd(users_key, users, gt=True)
        for key in (events_key, users_key):
            pipe.zremrangebyscore(key, "-inf", oldest)
            # EVAL, not a registered script: a pipeline with scripts asks SCRIPT EXISTS first,
            # a round trip more for every batch.
            pipe.eval(TRIM_TO_CAP, 1, key, now, MAX_PER_SITE)
            pipe.expire(key, _life(now, latest))


def _digest(identifier: str) -> bytes:
    return hashlib.blake2b(identifier.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


def _life(now: float, latest: float) -> int:
    """Seconds the sets live after a write: until the furthest event ahead they may hold has
    aged out. Ingestion accepts none past the calendar's end, however far ahead its setting
    reaches, and Redis refuses an expiry much further than that."""
    return KEEP_SECONDS + int(min(latest, CALENDAR_END) - now)


@dataclass(frozen=True)
class Recent:
    events: int
    unique_users: int
    # Either set holds MAX_PER_SITE members: the counts may be short.
    capped: bool = False


def recent(client: redis.Redis, site_id: str, max_ahead_seconds: int, now: float | None = None) -> Recent:
    """Events with a timestamp in the last WINDOW_SECONDS, or up to `max_ahead_seconds` later
    (a client's clock may run ahead as far as ingestion accepts), and their distinct users."""
    now = now or time.time()
    pipe = client.pipeline(transaction=False)
    for key in _keys(site_id):
        pipe.zcount(key, now - WINDOW_SECONDS, now + max_ahead_seconds)
        pipe.zcard(key)
    events, events_kept, users, users_kept = pipe.execute()
    return Recent(int(events), int(users), capped=max(events_kept, users_kept) >= MAX_PER_SITE)
