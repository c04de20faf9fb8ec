"""Each event's visit, from its visitor's state in Redis: the visit id, and the times of the
visit's first and last events seen so far. One script assigns a whole batch, so that for
each visitor the read and the update are one atomic step, however many workers run.

The visitor is the event's identity: `user_id`, else `visitor_id` (an event with neither
has no visit). The state holds the visitor's current visit and the one before it. An event
joins the current visit when it lies within 30 minutes of it (before its first event,
between, or after its last), and widens it; an event later than that opens a new visit,
and the current one becomes the one before; an earlier event joins the visit before when it
is within 30 minutes of that one, and otherwise, belonging to a visit the state no longer
follows, gets a visit of its own. So every visit's events are chained by pauses under 30
minutes; events of one visitor that reach the workers out of order across a pause may split
a visit in two (docs/sessions.md).

A visit id is a UUID5 of the site, the visitor and the event that opened the visit, so a
batch delivered again gets the same ids while the state remembers its visits.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis

from app.sessions import locks
from app.sessions.locks import LOCK_LUA
from app.visitors import identity

VISIT_TIMEOUT_MS = 30 * 60 * 1000
# How long a visitor's state outlives its last update: beyond the visit's 30 minutes, the
# time an event may wait in the queue (a backlog, a MongoDB outage) and still join it.
STATE_TTL_SECONDS = 2 * 60 * 60
STATE_KEY_PREFIX = "analytics:visit"
SEPARATOR = "\x1f"

# KEYS[i]: the state of event i's visitor; ARGV: the timeout (ms), the state's TTL (s), the
# lock prefix, the batch's token, the locks' TTL (ms), then for each event its time (ms), the
# id of the visit it would open, and the state key of its visitor's previous day's id (or
# ""). The state is the visitor's current visit and the one before (id, first and last
# times). Worked out on copies of the states first: if another batch holds the lock of a
# visit found, nothing is written and it returns 0; else the states are written, the locks
# taken, and it returns each event's visit id. (The previous days' state keys and the lock
# keys are not declared in KEYS: one Redis server, not a cluster, holds them all.)
ASSIGN = (
    LOCK_LUA
    + """
local timeout, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local states, visits, found = {}, {}, {}
local function near(t, first, last)
  return first ~= nil and t >= first - timeout and t <= last + timeout
end
local function state(key)
  if not states[key] then
    local v = redis.call('HMGET', key, 'visit', 'first', 'last',
      'previous', 'previous_first', 'previous_last')
    states[key] = {visit = v[1], first = tonumber(v[2]), last = tonumber(v[3]),
      previous = v[4], previous_first = tonumber(v[5]), previous_last = tonumber(v[6])}
  end
  return states[key]
end
for i, key in ipairs(KEYS) do
  local t, opened, yesterday = tonumber(ARGV[3 + 3 * i]), ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local s = state(key)
  if s.first == nil and yesterday ~= '' then
    -- A visitor's first event under a new day's id goes on with the visit of the day before.
    local y = state(yesterday)
    if near(t, y.first, y.last) then s.visit, s.first, s.last = y.visit, y.first, y.last end
  end
  if near(t, s.first, s.last) then
    visits[i], s.first, s.last = s.visit, math.min(s.first, t), math.max(s.last, t)
  elseif s.first ~= nil and t < s.first then
    if near(t, s.previous_first, s.previous_last) then
      visits[i] = s.previous
      s.previous_first, s.previous_last = math.min(s.previous_first, t), math.max(s.previous_last, t)
    else
      visits[i] = opened
    end
  else
    if s.first ~= nil then
      s.previous, s.previous_first, s.previous_last = s.visit, s.first, s.last
    end
    visits[i], s.visit, s.first, s.last = opened, opened, t, t
  end
  found[visits[i]] = true
end
if not all_free(ARGV[3], found, ARGV[4]) then return 0 end
for key, s in pairs(states) do
  if s.visit then
    redis.call('HSET', key, 'visit', s.visit, 'first', s.first, 'last', s.last)
    if s.previous then
      redis.call('HSET', key, 'previous', s.previous, 'previous_first', s.previous_first,
        'previous_last', s.previous_last)
    end
    redis.call('EXPIRE', key, ttl)
  end
end
take_all(ARGV[3], found, ARGV[4], ARGV[5])
return visits
"""
)


def state_key(visitor: str) -> str:
    """The Redis key of a visitor's state (`site \\x1f identity`), its identity hashed."""
    return f"{STATE_KEY_PREFIX}:" + hashlib.blake2b(visitor.encode(), digest_size=16).hexdigest()


def unassign(messages: Sequence[dict[str, Any]]) -> None:
    """Take back the visits `assign_visits` gave the messages: once stored, the messages are
    again as they were queued (a dead letter's replay assigns its visit anew)."""
    for message in messages:
        message.pop("visit_id", None)


def assign_visits(
    client: redis.Redis, messages: Sequence[dict[str, Any]], held: locks.Held
) -> Sequence[dict[str, Any]]:
    """Give each message its `visit_id` when it has an identity (in place: a batch's messages
    stay the objects its caller holds); the locks of their visits are then `held`'s
    (waiting while another batch holds any)."""
    result = messages
    # In time order, so that a batch's own events never split a visit.
    timed = sorted(
        (datetime.fromisoformat(message["timestamp"]), index)
        for index, message in enumerate(result)
        if identity(message)
    )
    if not timed:
        return result
    keys: list[str] = []
    args: list[Any] = [
        VISIT_TIMEOUT_MS,
        STATE_TTL_SECONDS,
        locks.LOCK_KEY_SPACE,
        held.token,
        locks.LOCK_TTL_MS,
    ]
    for moment, index in timed:
        message = result[index]
        visitor = SEPARATOR.join((message["site_id"], str(identity(message))))
        keys.append(state_key(visitor))
        opened = uuid.uuid5(uuid.NAMESPACE_URL, SEPARATOR.join((visitor, message["event_id"])))
        # Just after UTC midnight ingestion also names a cookie-less visitor by the previous
        # day's id (app/visitors.py), so a visit across midnight goes on.
        yesterday = None if message.get("user_id") else message.get("previous_visitor_id")
        previous = state_key(SEPARATOR.join((message["site_id"], yesterday))) if yesterday else ""
        args += [int(moment.timestamp() * 1000), str(opened), previous]
    assigned = locks.retrying(lambda: client.eval(ASSIGN, len(keys), *keys, *args) or None)
    for (_, index), visit in zip(timed, assigned, strict=True):
        result[index]["visit_id"] = visit.decode() if isinstance(visit, bytes) else visit
    held.visits.update(message["visit_id"] for message in result if "visit_id" in message)
    return result
