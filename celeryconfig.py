"""Celery settings, all derived from `app.settings.Settings` (and so from the environment)."""

from __future__ import annotations

from typing import Any

from app.queue import QUEUE
from app.settings import Settings


def celery_config(settings: Settings, consumes: bool = True) -> dict[str, Any]:
    """`consumes`: whether the process reads the queue (a worker) or only publishes (ingestion)."""
    broker_timeout = settings.broker_timeout_seconds
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # A message taken by a worker that dies before acknowledging it goes back on the
            # queue after this many seconds. Retry countdowns stay well below it.
            "visibility_timeout": settings.broker_visibility_timeout,
            "socket_connect_timeout": broker_timeout,
            # A consumer's BRPOP blocks for 1 s per poll, so its reads need longer than the
            # connect timeout. A publisher reads only the replies to its enqueues: half the
            # broker timeout, so that a request whose batch was sent at the end of its wait to be
            # sent still hears Redis's reply (or its absence) within its wait for the outcome,
            # another broker timeout (app/ingestion/views.py).
            "socket_timeout": max(5.0, broker_timeout) if consumes else broker_timeout / 2,
        },
        # Publishing retries only briefly (a stale pooled connection after a Redis restart),
        # so a client whose event cannot be queued gets its 503 in about a second. Ingestion
        # does not retry at all: its request waits for the outcome of a publish within one
        # broker timeout, so a publish must end (sent, or surely not) within it, and a pooled
        # connection the server closed is replaced before the publish uses it (redis-py).
        "task_publish_retry_policy": {
            "max_retries": 2 if consumes else 0,
            "interval_start": 0,
            "interval_step": broker_timeout / 4,
            "interval_max": broker_timeout / 4,
        },
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        # Durability. A message is acknowledged only once its events are in MongoDB; a pool
        # process that dies hands its message back at once (reject_on_worker_lost), and the
        # messages of a whole worker that died come back after the visibility timeout.
        # Prefetching one message per process keeps that unacknowledged set small, so a
        # dead worker strands little; a message already carries a batch, so the cost is low.
        # What Redis itself can lose while handing a message over is covered by app/queue/ledger.py.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_processes,
        # No task events unless someone watches: Flower turns them on in the workers while it
        # runs (its enable_events), so they cost nothing per message otherwise.
        "worker_send_task_events": False,
        # No "task-sent" event from ingestion: it is one more publish on every enqueue, the
        # hot path (docs/decisions/README.md).
        "task_send_sent_event": False,
    }
