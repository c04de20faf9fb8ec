"""Moving queued events into MongoDB: the persist task and the plain functions it calls.

Why batch messages rather than a batching task class: one message carries the events of a
whole request group or `POST /events` batch, and the task writes them with one
`insert_many`, so Celery's per-message cost is divided among the batch's events.
celery-batches (one message per event, flushed by count) still pays that cost per event, and
needs unbounded prefetch, which holds the whole queue unacknowledged in worker memory: a
killed worker would strand all of it until the visibility timeout (docs/decisions/).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import redis
from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval
from pymongo.database import Database
from pymongo.errors import PyMongoError

from app.extensions import mongo, redis_store
from app.queue import PERSIST_TASK, counters, ledger
from app.rollups import compactor, realtime
from app.settings import Settings, current_settings
from app.store import dead_letters
from app.store import events as event_store
from app.store.errors import is_transient

logger = logging.getLogger(__name__)

# For a batch stored outside a worker (tests, tools); a worker passes its settings' value.
DEFAULT_MAX_AHEAD_SECONDS = Settings().event_max_ahead_seconds


def store_batch(
    db: Database[Any],
    client: redis.Redis,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    max_ahead_seconds: int = DEFAULT_MAX_AHEAD_SECONDS,
) -> int:
    """Store a batch, dead-letter the events MongoDB refuses, then in one Redis round trip
    hand the batch's tallies to the rollups, remember its recent events (as far ahead as
    `max_ahead_seconds`, ingestion's EVENT_MAX_AHEAD_SECONDS), count its events and settle
    the batch in the ledger; return how many events were new.

    Safe to run again for the same batch: stored events and dead letters are keyed by event
    id, the tallies cover the events this batch stored, whichever run stored them, and the
    counts are added by the run that settles the batch.
    """
    outcome = event_store.insert_events(db, messages, batch_id)
    if outcome.rejected:
        logger.warning("dead-lettering %d events MongoDB refused", len(outcome.rejected))
        dead_letters.dead_letter(db, outcome.rejected)
    # Duplicates are events stored before (by this batch's earlier delivery, or another batch)
    # or copies of an event this very insert stored: those are counted once, as inserted.
    inserted = {document["_id"] for document in outcome.documents}
    earlier = {message["event_id"] for message in outcome.duplicates} - inserted
    owned = outcome.documents + event_store.owned_events(db, batch_id, earlier)
    refused = {message["event_id"] for message, _ in outcome.rejected}
    settle_batch(client, batch_id, messages, owned, refused, max_ahead_seconds)
    return len(outcome.inserted)


def settle_batch(
    client: redis.Redis,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    owned: Sequence[Mapping[str, Any]],
    dead: Collection[str],
    max_ahead_seconds: int = DEFAULT_MAX_AHEAD_SECONDS,
) -> None:
    """In one transaction, so that the ledger never settles a batch whose tallies did not
    reach the stream: hand the events the batch stored (`owned`) to the rollups and the
    realtime view, count its events, and settle it.

    Each event id counts once: as persisted if the batch stored it, not at all if it was
    dead-lettered (`dead`: the dead letters count it), else as repeated (another batch
    stored it, or it came earlier in this one).
    """
    counted: dict[str, list[Mapping[str, Any]]] = {counters.PERSISTED: [], counters.REPEATED: []}
    first_copies = {event["_id"] for event in owned} | set(dead)
    for message in messages:
        event_id = message["event_id"]
        if event_id in first_copies:
            first_copies.remove(event_id)
            if event_id not in dead:
                counted[counters.PERSISTED].append(message)
        else:
            counted[counters.REPEATED].append(message)
    pipe = client.pipeline(transaction=True)
    compactor.append_batch(pipe, batch_id, owned)
    realtime.record(pipe, owned, max_ahead_seconds)
    ledger.settle(pipe, batch_id, counters.additions(counted))
    pipe.execute()


def dead_letter_batch(
    db: Database[Any],
    client: redis.Redis,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    error: str,
    max_ahead_seconds: int = DEFAULT_MAX_AHEAD_SECONDS,
) -> None:
    """Give up on a batch whose retries ran out: dead-letter the events no attempt stored,
    and settle it with the events an earlier attempt did store handed to the rollups, as
    a successful run would (their replayed copies would belong to this batch, so nothing
    else would ever count them)."""
    stored = event_store.stored_events(db, [message["event_id"] for message in messages])
    owned = [event for event in stored.values() if event.get("batch_id") == batch_id]
    unstored = [message for message in messages if message["event_id"] not in stored]
    dead_letters.dead_letter(db, [(message, error) for message in unstored])
    dead = {message["event_id"] for message in unstored}
    settle_batch(client, batch_id, messages, owned, dead, max_ahead_seconds)


def retry_countdown(settings: Settings, retries: int, first_failure_at: float | None) -> float | None:
    """Seconds to wait before the next try, or None once the retry window is spent."""
    if first_failure_at is not None and time.time() - first_failure_at > settings.task_retry_window_seconds:
        return None
    return float(
        get_exponential_backoff_interval(
            factor=1, retries=retries, maximum=settings.task_retry_backoff_max, full_jitter=True
        )
    )


@shared_task(bind=True, name=PERSIST_TASK)
def persist_events(self: Task, messages: list[dict[str, Any]], first_failure_at: float | None = None) -> int:
    """Store a batch of event messages, retrying transient MongoDB errors within a time window.

    A batch still failing when the window is spent is dead-lettered (but for the events an
    earlier attempt stored); if even that fails (MongoDB still away), it keeps retrying at
    the longest interval: nothing is dropped.
    """
    settings = current_settings()
    batch_id = self.request.id
    try:
        return store_batch(mongo.db, redis_store.client, batch_id, messages, settings.event_max_ahead_seconds)
    except PyMongoError as error:
        # The server's conditions (unreachable, stepping down, busy, too slow, a write concern
        # not confirmed) are retried; any other error fails the task, and the ledger sends
        # the batch again later.
        if not is_transient(error):
            raise
        first_failure_at = first_failure_at or time.time()
        countdown = retry_countdown(settings, self.request.retries, first_failure_at)
        if countdown is None:
            try:
                dead_letter_batch(
                    mongo.db,
                    redis_store.client,
                    batch_id,
                    messages,
                    f"retries exhausted: {error}",
                    settings.event_max_ahead_seconds,
                )
                return 0
            except PyMongoError as still:
                if not is_transient(still):
                    raise
                countdown = settings.task_retry_backoff_max
        raise self.retry(
            exc=error,
            countdown=countdown,
            max_retries=None,
            kwargs={"first_failure_at": first_failure_at},
        ) from error
