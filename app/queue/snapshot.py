"""A read-only look at the Celery queue inside Redis (its layout: see `app/queue/__init__.py`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from app.queue import ENQUEUED_AT, QUEUE, UNACKED_KEY


@dataclass(frozen=True)
class QueueSnapshot:
    depth: int
    unacknowledged: int
    oldest_age_seconds: float | None


def snapshot(client: redis.Redis) -> QueueSnapshot:
    depth, unacknowledged = queue_depth(client), client.hlen(UNACKED_KEY)
    enqueued_at = oldest_enqueued_at(client)
    age = None if enqueued_at is None else round(max(0.0, time.time() - enqueued_at), 3)
    return QueueSnapshot(depth, unacknowledged, age)


def queue_depth(client: redis.Redis) -> int:
    """Messages waiting in the queue."""
    depth: int = client.llen(QUEUE)
    return depth


def oldest_enqueued_at(client: redis.Redis) -> float | None:
    """When the oldest waiting message was sent (epoch seconds), if any is waiting."""
    raw = client.lindex(QUEUE, -1)
    if raw is None:
        return None
    enqueued_at = json.loads(raw).get("headers", {}).get(ENQUEUED_AT)
    return None if enqueued_at is None else float(enqueued_at)


def held_task_ids(client: redis.Redis) -> set[str]:
    """Ids of the tasks whose messages workers hold unacknowledged (running, reserved, or
    waiting for a retry countdown)."""
    held = set()
    for raw in client.hvals(UNACKED_KEY):
        task_id = json.loads(raw)[0].get("headers", {}).get("id")
        if task_id:
            held.add(task_id)
    return held
