"""Reconciliation counters in Redis, in total and per site and UTC day, so an operator can
see that nothing is missing:
- `accepted`: every event ingestion accepted, a client's retry of an `event_id` included;
- `persisted`: events a batch stored in MongoDB (each stored event counts once, by the batch
  that stored it, however often that batch is delivered);
- `repeated`: events a batch carried that another batch had already stored (a client's
  retry), or a second copy in the same batch.
With nothing in flight, accepted = persisted + repeated + dead letters.

Counts are added by the ledger's scripts (app/queue/ledger.py): a batch's accepted events
when its entry is made, its persisted and repeated ones when its entry is settled, so a
transaction run twice, or a batch delivered twice, counts once.
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
REPEATED = "repeated"
KINDS = (ACCEPTED, PERSISTED, REPEATED)

# Lua: `add_counts(first_key, first_arg)` adds to each of KEYS[first_key..] the amount of its
# pair of ARGV from first_arg: a field ('' for a total) and an amount (see `additions`).
ADD_COUNTS_LUA = f"""
local function add_counts(first_key, first_arg)
  for i = first_key, #KEYS do
    local at = first_arg + 2 * (i - first_key)
    if ARGV[at] == '' then
      redis.call('INCRBY', KEYS[i], ARGV[at + 1])
    else
      redis.call('HINCRBY', KEYS[i], ARGV[at], ARGV[at + 1])
      redis.call('EXPIRE', KEYS[i], {SITE_DAY_SECONDS})
    end
  end
end
"""


def _totals_key(kind: str) -> str:
    return f"{PREFIX}:{kind}"


def _site_day_key(kind: str, day: str) -> str:
    return f"{PREFIX}:{kind}:{day}"


def site_day(message: Mapping[str, Any]) -> tuple[str, str]:
    """The site and UTC day (YYYY-MM-DD) an event message counts on."""
    timestamp = datetime.fromisoformat(message["timestamp"]).astimezone(UTC)
    return message["site_id"], timestamp.date().isoformat()


@dataclass(frozen=True)
class Additions:
    """Counts to add, as the keys and arguments `ADD_COUNTS_LUA` reads."""

    keys: tuple[str, ...] = ()
    args: tuple[str | int, ...] = ()


NOTHING = Additions()


def additions(counted: Mapping[str, Iterable[Mapping[str, Any]]]) -> Additions:
    """What counting these event messages, by kind, adds to the counters."""
    keys: list[str] = []
    args: list[str | int] = []
    for kind, messages in counted.items():
        per_site_day = Counter(site_day(message) for message in messages)
        if not per_site_day:
            continue
        keys.append(_totals_key(kind))
        args += ["", sum(per_site_day.values())]
        for (site_id, day), events in per_site_day.items():
            keys.append(_site_day_key(kind, day))
            args += [site_id, events]
    return Additions(tuple(keys), tuple(args))


@dataclass(frozen=True)
class Counts:
    accepted: int
    persisted: int
    repeated: int


def totals(client: redis.Redis) -> Counts:
    return Counts(*(int(count or 0) for count in client.mget([_totals_key(kind) for kind in KINDS])))


def for_site_day(client: redis.Redis, site_id: str, day: str) -> Counts:
    pipe = client.pipeline(transaction=False)
    for kind in KINDS:
        pipe.hget(_site_day_key(kind, day), site_id)
    return Counts(*(int(count or 0) for count in pipe.execute()))
