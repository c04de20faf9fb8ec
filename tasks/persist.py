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
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from celery import Signature, Task, shared_task
from celery.app.task import Context
from celery.utils.time import get_exponential_backoff_interval
from pymongo.database import Database
from pymongo.errors import PyMongoError

from app.enrichment import enrich
from app.extensions import FlaskTask, mongo, redis_store
from app.queue import PERSIST_TASK, counters, is_replay, ledger
from app.queue.publish import batch_repr
from app.rollups import compactor, realtime
from app.sessions.rows import rows_of
from app.settings import Settings, current_settings
from app.store import dead_letters, event_sites
from app.store import events as event_store
from app.store.errors import is_transient
from app.store.events import event_key
from tasks import accounting

logger = logging.getLogger(__name__)

# For a batch stored outside a worker (tests, tools); a worker passes its settings' value.
DEFAULT_MAX_AHEAD_SECONDS = Settings().event_max_ahead_seconds


def store_batch(
    db: Database[Any],
    client: redis.Redis,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    max_ahead_seconds: int = DEFAULT_MAX_AHEAD_SECONDS,
    *,
    lettered: bool = False,
    visits: bool = True,
) -> int:
    """Store a batch, dead-letter the events MongoDB refuses, then in one Redis round trip
    hand the batch's tallies (and with `visits`, its rows for the visits: app/sessions) to
    the rollups' compactor, remember its recent events (as far ahead as `max_ahead_seconds`,
    ingestion's EVENT_MAX_AHEAD_SECONDS), count its events and settle the batch in the
    ledger; return how many events were new.

    Safe to run again for the same batch: stored events and dead letters are keyed by event,
    the tallies cover the events this batch stored, whichever run stored them, and the
    counts are added by the run that settles the batch. A replay (`is_replay`), or a batch
    an earlier delivery dead-lettered events of (`lettered`), also removes the letters of
    the events it finds stored.
    """
    # Derived once per event, before the insert; the user agent goes no further, nor into a letter.
    messages = [enrich(message) for message in messages]
    outcome = event_store.insert_events(db, messages, batch_id)
    event_sites.note_sites(db, (document["site_id"] for document in outcome.documents))
    if outcome.rejected:
        logger.warning("dead-lettering %d events MongoDB refused", len(outcome.rejected))
    dead, held_elsewhere = _dead_letter(db, client, batch_id, outcome.rejected)
    # Duplicates are events stored before (by this batch's earlier delivery, or another
    # batch) or copies of an event this very insert stored: those are counted once, as
    # inserted.
    inserted = {document["_id"] for document in outcome.documents}
    earlier = [message for message in outcome.duplicates if event_key(message) not in inserted]
    owned = outcome.documents + event_store.owned_events(db, batch_id, earlier)
    elsewhere = {event_key(message) for message in earlier} - {document["_id"] for document in owned}
    stored = accounting.Stored(owned, elsewhere, dead, held_elsewhere)
    _settle_stored(db, client, batch_id, messages, stored, max_ahead_seconds, lettered, visits)
    return len(outcome.inserted)


def dead_letter_batch(
    db: Database[Any],
    client: redis.Redis,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    error: str,
    max_ahead_seconds: int = DEFAULT_MAX_AHEAD_SECONDS,
    *,
    lettered: bool = False,
    visits: bool = True,
) -> None:
    """Give up on a batch whose retries ran out: dead-letter the events no attempt stored,
    and settle it with the events an earlier attempt did store handed to the rollups, as
    a successful run would (their replayed copies would belong to this batch, so nothing
    else would ever count them)."""
    messages = [enrich(message) for message in messages]  # (as stored, for the letters too)
    found = event_store.stored_events(db, messages)
    # Stored under its own key, by this batch; a copy with another timestamp is another's.
    owned = [
        event for key, event in found.items() if event["_id"] == key and event.get("batch_id") == batch_id
    ]
    unstored = [message for message in messages if event_key(message) not in found]
    dead, held_elsewhere = _dead_letter(db, client, batch_id, [(message, error) for message in unstored])
    stored = accounting.Stored(owned, set(found) - {event["_id"] for event in owned}, dead, held_elsewhere)
    _settle_stored(db, client, batch_id, messages, stored, max_ahead_seconds, lettered, visits)


def _dead_letter(
    db: Database[Any], client: redis.Redis, batch_id: str, failures: Sequence[tuple[Mapping[str, Any], str]]
) -> tuple[set[str], set[str]]:
    """Dead-letter these events of the batch, the ledger told first, so that a later delivery
    that stores them removes their letters; the keys dead-lettered, and of those the keys
    whose letter holds another batch's copy."""
    if not failures:
        return set(), set()
    if not is_replay(batch_id):  # (a replay always looks for letters)
        ledger.mark_lettered(client, batch_id)
    held_elsewhere = dead_letters.dead_letter(db, failures, batch_id=batch_id)
    return {event_key(message) for message, _ in failures}, held_elsewhere


def _settle_stored(
    db: Database[Any],
    client: redis.Redis,
    batch_id: str,
    messages: Sequence[Mapping[str, Any]],
    stored: accounting.Stored,
    max_ahead_seconds: int,
    lettered: bool,
    visits: bool,
) -> None:
    """Remove the letters the stored events leave behind, if any may, then settle the batch,
    with its rows for the visits if `visits`."""
    repeats = accounting.remove_letters(db, batch_id, stored) if lettered or is_replay(batch_id) else set()
    rows = rows_of(stored.owned, _previous_visitor_ids(messages)) if visits else None
    settle_batch(
        client,
        batch_id,
        stored.owned,
        accounting.counted(messages, batch_id, stored, repeats),
        max_ahead_seconds,
        rows,
    )


def _previous_visitor_ids(messages: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """The previous day's visitor ids the messages came with (just after UTC midnight,
    app/visitors.py), by site and event id: they are not stored, and let a visit go on."""
    return {
        (message["site_id"], message["event_id"]): message["previous_visitor_id"]
        for message in messages
        if message.get("previous_visitor_id")
    }


def settle_batch(
    client: redis.Redis,
    batch_id: str,
    owned: Sequence[Mapping[str, Any]],
    counted: Mapping[str, Sequence[Mapping[str, Any]]],
    max_ahead_seconds: int = DEFAULT_MAX_AHEAD_SECONDS,
    visit_rows: Mapping[str, list[list[Any]]] | None = None,
) -> None:
    """In one transaction, so that the ledger never settles a batch whose tallies did not
    reach the stream: hand the events the batch stored (`owned`) and their `visit_rows` to
    the rollups' compactor and the realtime view, count its events and settle it."""
    pipe = client.pipeline(transaction=True)
    compactor.append_batch(pipe, batch_id, owned, visit_rows)
    realtime.record(pipe, owned, max_ahead_seconds)
    ledger.settle(pipe, batch_id, counters.additions(counted))
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


class PersistTask(FlaskTask):
    """The persist task's class: a retry's message shows its batch as the first one does.

    `Task.retry` builds the next message from the request, and Celery leaves the request's
    `argsrepr` out of it (celery/celery#6086), so the retry's headers would carry the repr of
    the events themselves, which the worker logs."""

    def signature_from_request(
        self,
        request: Context | None = None,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        **extra_options: Any,
    ) -> Signature:
        args = (self.request if request is None else request).args if args is None else args
        extra_options.setdefault("argsrepr", batch_repr(args[0]) if args else "[]")
        return super().signature_from_request(request, args, kwargs, queue, **extra_options)


@shared_task(bind=True, name=PERSIST_TASK, base=PersistTask)
def persist_events(self: Task, messages: list[dict[str, Any]], first_failure_at: float | None = None) -> int:
    """Store a batch of event messages, retrying transient MongoDB errors within a time window.

    A batch still failing when the window is spent is dead-lettered (but for the events an
    earlier attempt stored); if even that fails (MongoDB still away), it keeps retrying at
    the longest interval: nothing is dropped. A delivery of a batch the ledger remembers as
    settled stores nothing: what it could store now (an event dead-lettered then) would
    reach no rollup, since the rollups add a batch once.
    """
    settings = current_settings()
    batch_id = self.request.id
    known = ledger.delivery(redis_store.client, batch_id)
    if known.settled:
        logger.info("batch %s was settled by an earlier delivery: nothing to store", batch_id)
        return 0
    logger.debug("batch %s: storing %d events", batch_id, len(messages))
    try:
        return store_batch(
            mongo.db,
            redis_store.client,
            batch_id,
            messages,
            settings.event_max_ahead_seconds,
            lettered=known.lettered,
            visits=bool(settings.visits),
        )
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
                    lettered=known.lettered,
                    visits=bool(settings.visits),
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
