"""Moving queued events into MongoDB: the persist task and the plain functions it calls.

Why batch messages rather than a batching task class: one message carries the events of a
whole request group or `POST /events` batch, and the task writes them with one
`insert_many`. `make bench-worker` measured 100-event messages at 18-30x the
one-task-and-`insert_one`-per-event design (6-9x with 10-event messages), and celery-batches
(one message per event, flushed by 100) at only 2.3-2.7x: the gain comes from dividing
Celery's per-message cost (about 4.5 ms of worker CPU here), which celery-batches still pays
per event. It also needs unbounded prefetch, which holds the whole queue unacknowledged in
worker memory, so a killed worker strands all of it until the visibility timeout.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import kombu.serialization
import orjson
import redis
from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, WTimeoutError
from redis.exceptions import RedisError

from app import compactor, counters, ledger, realtime, storage, user_ids
from app.config import Settings, current_settings
from app.extensions import mongo, redis_store
from celeryconfig import ENQUEUED_AT
from tasks import redis_transport

logger = logging.getLogger(__name__)

# Errors that pass: the server is restarting, unreachable, stepping down or too slow.
# (NotPrimaryError is an AutoReconnect.)
TRANSIENT_ERRORS = (AutoReconnect, ConnectionFailure, ExecutionTimeout, WTimeoutError)


def store_batch(
    db: Database[Any], client: redis.Redis, batch_id: str, messages: Sequence[Mapping[str, Any]]
) -> int:
    """Store a batch, dead-letter the events MongoDB refuses, then in one Redis round trip
    hand the batch's tallies to the rollups, remember its recent events, count the new ones
    as persisted and settle the batch in the ledger; return how many events were new.

    Safe to run again for the same batch: stored events and dead letters are keyed by event
    id, and the tallies cover the events this batch stored, whichever run stored them.
    """
    outcome = storage.insert_events(db, messages, batch_id)
    if outcome.rejected:
        logger.warning("dead-lettering %d events MongoDB refused", len(outcome.rejected))
        storage.dead_letter(db, outcome.rejected)
    owned = outcome.documents + storage.owned_events(
        db, batch_id, (message["event_id"] for message in outcome.duplicates)
    )
    # A transaction, so the ledger never settles a batch whose tallies did not reach the stream.
    pipe = client.pipeline(transaction=True)
    compactor.append_batch(pipe, batch_id, user_ids.numbered(client, owned))
    realtime.record(pipe, owned)
    counters.add(pipe, counters.PERSISTED, outcome.inserted)
    ledger.settle(pipe, batch_id)
    pipe.execute()
    return len(outcome.inserted)


def dead_letter_batch(
    db: Database[Any], client: redis.Redis, batch_id: str, messages: Sequence[Mapping[str, Any]], error: str
) -> None:
    storage.dead_letter(db, [(message, error) for message in messages])
    pipe = client.pipeline(transaction=False)
    ledger.settle(pipe, batch_id)
    pipe.execute()


def retry_countdown(settings: Settings, retries: int, first_failure_at: float | None) -> float | None:
    """Seconds to wait before the next try, or None once the retry window is spent."""
    if first_failure_at is not None and time.time() - first_failure_at > settings.task_retry_window_seconds:
        return None
    return float(
        get_exponential_backoff_interval(
            factor=1, retries=retries, maximum=settings.task_retry_backoff_max, full_jitter=True
        )
    )


@shared_task(bind=True, name="tasks.persist_events")
def persist_events(self: Task, messages: list[dict[str, Any]], first_failure_at: float | None = None) -> int:
    """Store a batch of event messages, retrying transient MongoDB errors within a time window.

    A batch still failing when the window is spent is dead-lettered whole; if even that
    fails (MongoDB still away), it keeps retrying at the longest interval: nothing is dropped.
    """
    settings = current_settings()
    batch_id = self.request.id
    try:
        return store_batch(mongo.db, redis_store.client, batch_id, messages)
    except TRANSIENT_ERRORS as error:
        first_failure_at = first_failure_at or time.time()
        countdown = retry_countdown(settings, self.request.retries, first_failure_at)
        if countdown is None:
            try:
                dead_letter_batch(
                    mongo.db, redis_store.client, batch_id, messages, f"retries exhausted: {error}"
                )
                return 0
            except TRANSIENT_ERRORS:
                countdown = settings.task_retry_backoff_max
        raise self.retry(
            exc=error,
            countdown=countdown,
            max_retries=None,
            kwargs={"first_failure_at": first_failure_at},
        ) from error


# The persist task's arguments are plain JSON, which orjson writes 14x faster than kombu's
# json (15 against 211 µs for 100 events). The content type stays application/json: any
# worker reads the message with kombu's own json decoder.
ORJSON = "orjson"
kombu.serialization.register(ORJSON, orjson.dumps, None, content_type="application/json")
# register() also made "orjson" the name kombu answers application/json requests in (the
# remote-control replies Flower asks for); those keep kombu's json, which encodes more types.
kombu.serialization.registry.type_to_name["application/json"] = "json"


def publish(messages: Sequence[Mapping[str, Any]], batch_id: str) -> None:
    """Put one message carrying these events on the broker; returns once Redis holds it.

    Raises kombu's OperationalError when the broker cannot be reached.
    """
    persist_events.apply_async(
        args=[list(messages)],
        task_id=batch_id,
        headers={ENQUEUED_AT: time.time()},
        retry=True,
        serializer=ORJSON,
        # Celery declares the queue before every publish (60 µs of a 600 µs enqueue). Redis
        # needs no declaration to take the message: Celery sends to the queue by name (the
        # default exchange), and the worker declares the queue it reads.
        declare=[],
        # What Flower shows for the arguments; Celery's default repr of a batch costs more
        # than a quarter of the publish.
        argsrepr=f"[{len(messages)} events]",
        kwargsrepr="{}",
    )


def enqueue_events(messages: Sequence[Mapping[str, Any]], *, count_as_accepted: bool = True) -> None:
    """Queue a batch of events, recorded in the ledger and counted as accepted.

    Raises kombu's OperationalError when the broker cannot be reached (the caller answers
    503). Through Redis, the bookkeeping goes in the message's own transaction (one round
    trip, and no queued batch without its ledger entry). Elsewhere (tasks run eagerly) it
    follows the publish and is best effort: once the message is queued the events are
    accepted, and a bookkeeping failure must not become an error the client retries.
    """
    batch_id = uuid.uuid4().hex

    def bookkeeping(pipe: redis.client.Pipeline) -> None:
        ledger.record(pipe, batch_id, messages)
        if count_as_accepted:
            counters.add(pipe, counters.ACCEPTED, messages)

    writes = redis_transport.Alongside(bookkeeping)
    with redis_transport.published_with(writes):
        publish(messages, batch_id)
    if writes.sent:
        return
    try:
        pipe = redis_store.client.pipeline(transaction=False)
        bookkeeping(pipe)
        pipe.execute()
    except RedisError as error:
        logger.warning("queued batch %s but could not record it: %s", batch_id, error)
