"""The ledger of accepted batches that no worker has stored yet.

Kombu's Redis transport takes a message off the queue (BRPOP) and only then records it as
unacknowledged (HSET): if Redis dies between the two, or before the worker hears the
reply, the message is gone from Redis although it was accepted. So ingestion also writes
each batch here, a worker settles it once MongoDB holds its events (or its dead letters),
and a periodic check sends again any batch that has been neither queued, held by a worker,
nor settled for too long. Sending a batch twice is harmless: events are keyed by event_id,
and a delivery of a batch the ledger remembers as settled stores nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis

from app.monitoring import request_ids
from app.queue import counters, snapshot

ORDER_KEY = "analytics:ledger"  # sorted set: batch id -> when it was (last) sent
BATCHES_KEY = "analytics:ledger:batches"  # hash: batch id -> JSON list of event messages
# hash: batch id -> JSON list of the ids of the requests that sent it, so that a batch sent
# again names them too (app/monitoring/request_ids.py)
REQUEST_IDS_KEY = "analytics:ledger:request_ids"
# sorted set: batch id -> when it was settled, for as long as a message of it may come back
SETTLED_KEY = "analytics:ledger:settled"
# set: batches a delivery dead-lettered events of before it settled them
LETTERED_KEY = "analytics:ledger:lettered"
LOCK_KEY = "analytics:ledger:lock"

# The entry's novelty guards the counts, so that a transaction that runs again (a publish
# sent again after its first EXEC landed unheard) or a batch delivered again counts nothing
# more. (Only a publish run again after its batch was settled would count twice: ingestion
# never sends one again once it may have reached Redis, app/queue/transport.py.)
# KEYS[1]: ORDER_KEY, KEYS[2]: BATCHES_KEY, KEYS[3]: REQUEST_IDS_KEY, KEYS[4..]: the
# counters' keys. RECORD's ARGV: batch id, time, the messages as JSON, the request ids as
# JSON ('' for none), then the counts.
RECORD = (
    counters.ADD_COUNTS_LUA
    + """
if redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
add_counts(4, 5)
return 1
"""
)
# SETTLE's KEYS: ORDER_KEY, BATCHES_KEY, REQUEST_IDS_KEY, SETTLED_KEY, LETTERED_KEY, the
# counters' keys; ARGV: batch id, time, then the counts.
SETTLE = (
    counters.ADD_COUNTS_LUA
    + """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('SREM', KEYS[5], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
add_counts(6, 3)
return 1
"""
)


def record(
    pipe: redis.client.Pipeline,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    counted: counters.Additions = counters.NOTHING,
) -> None:
    """Add 'this batch is queued, count its events' to the commands of the transaction that
    queues it; counted once, by the transaction that makes the entry. The ids of the requests
    being served, which its message carries, are kept with it."""
    # A script sent whole (EVAL), not by its hash: a script Redis lost on a restart would fail
    # inside the transaction while the message itself is queued.
    body = orjson.dumps(list(messages))  # many times json.dumps's speed
    ids = request_ids.current()
    keys = [ORDER_KEY, BATCHES_KEY, REQUEST_IDS_KEY, *counted.keys]
    pipe.eval(
        RECORD, len(keys), *keys, batch_id, time.time(), body, orjson.dumps(ids) if ids else "", *counted.args
    )


def settle(
    pipe: redis.client.Pipeline, batch_id: str, counted: counters.Additions = counters.NOTHING
) -> None:
    """Add 'this batch is stored, count its events' to the pipeline's commands; counted once,
    by the first delivery of the batch that settles it, which the ledger then remembers
    (`delivery`) until `forget_settled`."""
    keys = [ORDER_KEY, BATCHES_KEY, REQUEST_IDS_KEY, SETTLED_KEY, LETTERED_KEY, *counted.keys]
    pipe.eval(SETTLE, len(keys), *keys, batch_id, time.time(), *counted.args)


@dataclass(frozen=True)
class Delivery:
    """What the ledger knows of a batch a worker is about to store."""

    # An earlier delivery settled it: its events are all stored, repeated or dead-lettered,
    # and its tallies are in the rollups, which add a batch once. An event this delivery
    # stored now would be counted by no one.
    settled: bool
    # An earlier delivery dead-lettered some of its events, then died before settling: the
    # events this one stores may have letters of this batch.
    lettered: bool


def delivery(client: redis.Redis, batch_id: str) -> Delivery:
    """What the ledger knows of batch `batch_id`, in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.zscore(SETTLED_KEY, batch_id)
    pipe.sismember(LETTERED_KEY, batch_id)
    settled_at, lettered = pipe.execute()
    return Delivery(settled=settled_at is not None, lettered=bool(lettered))


def mark_lettered(client: redis.Redis, batch_id: str) -> None:
    """Note, before writing them, that batch `batch_id` has dead letters; settling clears it."""
    client.sadd(LETTERED_KEY, batch_id)


def forget_settled(client: redis.Redis, settled_before: float) -> int:
    """Forget the batches settled before `settled_before` (epoch seconds); return how many."""
    forgotten: int = client.zremrangebyscore(SETTLED_KEY, "-inf", settled_before)
    return forgotten


def oldest_unsettled(client: redis.Redis) -> float | None:
    """When the oldest batch not yet stored was (last) sent, in epoch seconds, if any is."""
    oldest = cast(list[tuple[bytes, float]], client.zrange(ORDER_KEY, 0, 0, withscores=True))
    return oldest[0][1] if oldest else None


def outstanding(client: redis.Redis) -> int:
    count: int = client.zcard(ORDER_KEY)
    return count


@dataclass(frozen=True)
class LostBatch:
    messages: list[dict[str, Any]]
    # The ids of the requests that sent it, for its message to carry again.
    request_ids: tuple[str, ...]


def lost_batches(client: redis.Redis, grace_seconds: float) -> dict[str, LostBatch]:
    """Batches unsettled for longer than `grace_seconds` that are neither queued nor held
    (unacknowledged) by a worker.

    A batch counts as queued when it is older than the oldest queued message no longer:
    the queue is first in, first out, so anything sent before that message has left it.
    """
    cutoff = time.time() - grace_seconds
    oldest_queued = snapshot.oldest_enqueued_at(client)
    if oldest_queued is not None:
        cutoff = min(cutoff, oldest_queued)
    due = cast(list[bytes], client.zrangebyscore(ORDER_KEY, "-inf", cutoff))
    candidates = [tag.decode() for tag in due]
    if not candidates:
        return {}
    held = snapshot.held_task_ids(client)
    lost = [batch_id for batch_id in candidates if batch_id not in held]
    if not lost:
        return {}
    pipe = client.pipeline(transaction=False)
    pipe.hmget(BATCHES_KEY, lost)
    pipe.hmget(REQUEST_IDS_KEY, lost)
    bodies, ids = pipe.execute()
    return {
        batch_id: LostBatch(json.loads(body), tuple(json.loads(found)) if found else ())
        for batch_id, body, found in zip(lost, bodies, ids, strict=True)
        if body
    }


def mark_resent(client: redis.Redis, batch_ids: Sequence[str]) -> None:
    """Restart the grace period of batches just sent again."""
    now = time.time()
    client.zadd(ORDER_KEY, dict.fromkeys(batch_ids, now), xx=True)


def try_lock(client: redis.Redis, ttl_seconds: int) -> bool:
    """One check at a time across all workers; the lock expires on its own."""
    return bool(client.set(LOCK_KEY, "1", nx=True, ex=ttl_seconds))
