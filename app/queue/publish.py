"""Putting a batch of events on the queue: one Celery message for the persist task, with its
ledger entry and counters in the same Redis transaction."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError

from app.extensions import celery_app, redis_store
from app.monitoring import request_ids
from app.queue import ENQUEUED_AT, PERSIST_TASK, REPLAY_PREFIX, counters, ledger, transport

logger = logging.getLogger(__name__)


def publish(messages: Sequence[Mapping[str, Any]], batch_id: str) -> None:
    """Put one message carrying these events on the broker; returns once Redis holds it.

    Sent by name: a process that registered the task (a worker, or unit tests running tasks
    eagerly) calls it through the registry, any other sends the message without the task's code.
    Raises kombu's OperationalError when the broker cannot be reached.
    """
    headers: dict[str, Any] = {ENQUEUED_AT: time.time()}
    ids = request_ids.current()
    if ids:  # the requests whose events these are: the worker's log lines name them
        headers[request_ids.MESSAGE_HEADER] = list(ids)
    celery_app.signature(PERSIST_TASK).apply_async(
        args=[list(messages)],
        task_id=batch_id,
        headers=headers,
        retry=True,
        serializer=transport.ORJSON,
        # Redis needs no declaration to take the message: Celery sends to the queue by name
        # (the default exchange), and the worker declares the queue it reads. Declaring it
        # before every publish is a measurable share of an enqueue.
        declare=[],
        # What Flower shows for the arguments; Celery's default repr of a batch costs more
        # than the rest of the message.
        argsrepr=batch_repr(messages),
        kwargsrepr="{}",
    )


def batch_repr(messages: Sequence[Any]) -> str:
    """A batch's arguments as its message's headers and the worker's log lines show them: how
    many events, never what they hold."""
    return f"[{len(messages)} events]"


def enqueue_events(messages: Sequence[Mapping[str, Any]], *, replay: bool = False) -> None:
    """Queue a batch of events, recorded in the ledger and counted as accepted; with `replay`
    (events of dead letters, accepted once already) marked as a replay and not counted.

    Raises kombu's OperationalError when the broker cannot be reached (the caller answers
    503). Through Redis, the bookkeeping goes in the message's own transaction (one round
    trip, and no queued batch without its ledger entry). Elsewhere (another transport) it
    follows the publish and is best effort: once the message is queued the events are
    accepted, and a bookkeeping failure must not become an error the client retries.
    """
    batch_id = f"{REPLAY_PREFIX if replay else ''}{uuid.uuid4().hex}"
    counted = counters.NOTHING if replay else counters.additions({counters.ACCEPTED: messages})
    writes = transport.Alongside(lambda pipe: ledger.record(pipe, batch_id, messages, counted))
    if celery_app.conf.task_always_eager:
        # The task runs inside the publish (unit tests): it must find its ledger entry there,
        # as it does when the message's own transaction carries it.
        _write_aside(writes, batch_id)
        publish(messages, batch_id)
        return
    with transport.published_with(writes):
        publish(messages, batch_id)
    if not writes.sent:
        _write_aside(writes, batch_id)


def _write_aside(writes: transport.Alongside, batch_id: str) -> None:
    """Send the bookkeeping on its own, best effort."""
    try:
        pipe = redis_store.client.pipeline(transaction=False)
        writes.write(pipe)
        pipe.execute()
    except RedisError as error:
        logger.warning("could not record batch %s in the ledger: %s", batch_id, error)
