"""Locks on visits, so that one worker at a time rewrites a visit's document: FerretDB applies
an update by reading, changing and writing the document with no lock, so two workers
updating one visit at once could lose an event.

A batch takes its visits' locks with their assignment, in the same script
(app/sessions/assign.py), all or none, so that two batches never hold part of each other's;
it gives them back in the transaction that settles it (tasks/persist.py), so the locks
cost no round trip of their own. A lock outlives a worker that died holding it by
LOCK_TTL_MS at most.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

LOCK_KEY_PREFIX = "analytics:visit-lock"
# What the scripts put before a visit id to make its lock's key.
LOCK_KEY_SPACE = f"{LOCK_KEY_PREFIX}:"
LOCK_TTL_MS = 30_000
# How long a batch waits for locks another batch holds, before failing (to be retried).
WAIT_SECONDS = 10.0
RETRY_SECONDS = 0.01

# Lua: whether every lock of `visits` (a table of visit ids) is free or already `token`'s;
# and taking them. Shared by the scripts that take locks.
LOCK_LUA = """
local function all_free(prefix, visits, token)
  for visit in pairs(visits) do
    local holder = redis.call('GET', prefix .. visit)
    if holder and holder ~= token then return false end
  end
  return true
end
local function take_all(prefix, visits, token, ttl)
  for visit in pairs(visits) do redis.call('SET', prefix .. visit, token, 'PX', ttl) end
end
"""
# ARGV: the lock prefix, the holder's token, the TTL (ms), the visit ids. 1 if all are taken.
TAKE = (
    LOCK_LUA
    + """
local visits = {}
for i = 4, #ARGV do visits[ARGV[i]] = true end
if not all_free(ARGV[1], visits, ARGV[2]) then return 0 end
take_all(ARGV[1], visits, ARGV[2], ARGV[3])
return 1
"""
)
# ARGV: the lock prefix, the holder's token, the visit ids. Frees those the holder still holds.
GIVE_BACK = """
for i = 3, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  if redis.call('GET', key) == ARGV[2] then redis.call('DEL', key) end
end
return 1
"""


class VisitLockTimeoutError(Exception):
    """Another worker held a visit's lock for longer than a batch waits."""


@dataclass
class Held:
    """The visits' locks one batch holds, under its token."""

    token: str = field(default_factory=lambda: secrets.token_hex(8))
    visits: set[str] = field(default_factory=set)


def retrying(attempt: Callable[[], Any]) -> Any:
    """`attempt()`'s first answer other than None, tried again while locks are held elsewhere."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (answer := attempt()) is None:
        if time.monotonic() > deadline:
            raise VisitLockTimeoutError(f"visits locked elsewhere for over {WAIT_SECONDS} s")
        time.sleep(RETRY_SECONDS)
    return answer


def take(client: redis.Redis, held: Held, visit_ids: Iterable[str]) -> None:
    """Take these visits' locks too (those `held` lacks), waiting while another batch holds any."""
    wanted = sorted(set(visit_ids) - held.visits)
    if wanted:
        args = [LOCK_KEY_SPACE, held.token, LOCK_TTL_MS, *wanted]
        retrying(lambda: client.eval(TAKE, 0, *args) or None)
        held.visits.update(wanted)


def give_back(client: redis.Redis | redis.client.Pipeline, held: Held) -> None:
    """Free the locks `held` holds (in a pipeline: when it runs)."""
    if held.visits:
        client.eval(GIVE_BACK, 0, LOCK_KEY_SPACE, held.token, *sorted(held.visits))


@contextmanager
def given_back_on_error(client: redis.Redis, held: Held) -> Iterator[Held]:
    """Free `held`'s locks if the block fails (on success the batch's settling frees them)."""
    try:
        yield held
    except BaseException:
        give_back(client, held)
        raise
