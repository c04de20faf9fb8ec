"""Reconciliation counters in Redis: events accepted by ingestion and persisted by workers,
in total and per site and UTC day, so an operator can see that nothing is missing.

`accepted` counts every accepted event, including a client's retries of an `event_id`
already accepted; `persisted` counts events new to MongoDB. So with nothing in flight,
accepted = persisted + dead-lettered + client retries of stored events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

PREFIX = "analytics:counters"
# A site-day's counts are kept this long after their last change, so a day's keys do not
# accumulate forever (the totals have no day and stay).
SITE_DAY_SECONDS = 400 * 24 * 3600
ACCEPTED = "accepted"
PERSISTED = "persisted"


def _totals_key(kind: str) -> str:
    return f"{PREFIX}:{kind}"


def _site_day_key(kind: str, day: str) -> str:
    return f"{PREFIX}:{kind}:{day}"


def site_day(message: Mapping[str, Any]) -> tuple[str, str]:
    """The site and UTC day (YYYY-MM-DD) an event message counts on."""
    timestamp = datetime.fromisoformat(message["timestamp"]).astimezone(UTC)
    return message["site_id"], timestamp.date().isoformat()


def add(pipe: redis.client.Pipeline, kind: str, messages: Iterable[Mapping[str, Any]]) -> None:
    """Add 'count these events as `kind`' to the pipeline's commands."""
    per_site_day = Counter(site_day(message) for message in messages)
    if not per_site_day:
        return
    pipe.incrby(_totals_key(kind), sum(per_site_day.values()))
    for (site_id, day), events in per_site_day.items():
        pipe.hincrby(_site_day_key(kind, day), site_id, events)
    for day in {day for _, day in per_site_day}:
        pipe.expire(_site_day_key(kind, day), SITE_DAY_SECONDS)


@dataclass(frozen=True)
class Counts:
    accepted: int
    persisted: int


def totals(client: redis.Redis) -> Counts:
    accepted, persisted = client.mget(_totals_key(ACCEPTED), _totals_key(PERSISTED))
    return Counts(int(accepted or 0), int(persisted or 0))


def for_site_day(client: redis.Redis, site_id: str, day: str) -> Counts:
    pipe = client.pipeline(transaction=False)
    pipe.hget(_site_day_key(ACCEPTED, day), site_id)
    pipe.hget(_site_day_key(PERSISTED, day), site_id)
    accepted, persisted = pipe.execute()
    return Counts(int(accepted or 0), int(persisted or 0))
