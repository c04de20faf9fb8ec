"""Small integer ids for each site's users, so rollups keep distinct users as bitmaps.

A rollup that kept user ids as strings made a 30-day question merge every user's string
(docs/decisions/rollup-users-as-strings.md); as bitmaps it is a few `|` of ints. Ids are assigned once, in
Redis (append-only, fsync always, like the queue), by a script that runs atomically, so any
number of compactors may ask at once. Were the mapping ever lost, every site's rollups must be
rebuilt (`make rebuild-rollups`): new ids would not match the bits already stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import redis

PREFIX = "analytics:user-ids"  # PREFIX:<site id>: hash, user -> id
# Hash: site id -> the last id given. Outside PREFIX's keys, so that no site id names it.
LAST_IDS_KEY = "analytics:user-id-last"
# Where earlier versions kept LAST_IDS_KEY's hash, which a site named "next" would share.
LEGACY_LAST_IDS_KEY = f"{PREFIX}:next"

# KEYS[1]: the site's user -> id hash; KEYS[2]: LAST_IDS_KEY; KEYS[3]: LEGACY_LAST_IDS_KEY;
# ARGV[1]: the site; ARGV[2..]: users. The first call after an upgrade moves the legacy hash.
GET_OR_ASSIGN = """
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RENAME', KEYS[3], KEYS[2])
end
local ids = {}
for i = 2, #ARGV do
  local id = redis.call('HGET', KEYS[1], ARGV[i])
  if not id then
    id = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
    redis.call('HSET', KEYS[1], ARGV[i], id)
  end
  ids[i - 1] = tonumber(id)
end
return ids
"""


def ids_by_site(client: redis.Redis, users_by_site: Mapping[str, Iterable[str]]) -> dict[str, dict[str, int]]:
    """Each site's users' ids (1, 2, ...), giving new users the next ids, in one round trip."""
    wanted = {site_id: sorted(set(users)) for site_id, users in users_by_site.items()}
    wanted = {site_id: users for site_id, users in wanted.items() if users}
    if not wanted:
        return {}
    script = client.register_script(GET_OR_ASSIGN)
    pipe = client.pipeline(transaction=False)
    for site_id, users in wanted.items():
        keys = [f"{PREFIX}:{site_id}", LAST_IDS_KEY, LEGACY_LAST_IDS_KEY]
        script(keys=keys, args=[site_id, *users], client=pipe)
    answers = cast(list[list[int]], pipe.execute())
    return {
        site_id: dict(zip(users, ids, strict=True))
        for (site_id, users), ids in zip(wanted.items(), answers, strict=True)
    }


def numbered(client: redis.Redis, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The events with each `user_id` replaced by the user's id on the event's site."""
    events = list(events)
    users_by_site: dict[str, set[str]] = {}
    for event in events:
        if event.get("user_id"):
            users_by_site.setdefault(event["site_id"], set()).add(event["user_id"])
    ids = ids_by_site(client, users_by_site)
    return [
        {**event, "user_id": ids[event["site_id"]][event["user_id"]]} if event.get("user_id") else dict(event)
        for event in events
    ]


def numbered_locally(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The events with user ids numbered for this list alone: enough to count distinct users."""
    ids: dict[str, int] = {}
    return [
        {**event, "user_id": ids.setdefault(event["user_id"], len(ids) + 1)}
        if event.get("user_id")
        else dict(event)
        for event in events
    ]
