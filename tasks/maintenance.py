"""Periodic work every worker offers and one at a time performs: sending again the batches
the ledger says were lost between the broker and the workers (see app/queue/ledger.py),
adding the workers' deltas into the rollups (see app/rollups/compactor.py), and deleting
expired raw events (see app/retention.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

import redis
from celery import bootsteps
from flask import Flask
from pymongo.database import Database
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app import retention
from app.extensions import mongo, redis_store
from app.monitoring import request_ids
from app.queue import ledger, snapshot
from app.queue.publish import publish
from app.rollups import compactor
from app.rollups.caps import Caps
from app.settings import Settings, current_settings
from app.store.fenced import StaleWriteError

logger = logging.getLogger(__name__)


# How often, at most, kombu looks for the unacknowledged messages of dead workers (every
# tenth of its 10-second checks).
KOMBU_RESTORE_SECONDS = 100


def settled_memory_seconds(settings: Settings) -> float:
    """How long the ledger remembers a settled batch: twice the longest a message of it may
    take to come back, a whole worker having died holding it (the visibility timeout, then
    kombu's restore) with a retry of it scheduled (the longest wait between retries)."""
    return 2 * (settings.broker_visibility_timeout + KOMBU_RESTORE_SECONDS + settings.task_retry_backoff_max)


def resend_lost_batches(client: redis.Redis, settings: Settings) -> int:
    """Send again every lost batch, and forget the batches settled long ago; return how many
    were sent. Only one worker checks per interval."""
    if not ledger.try_lock(client, settings.ledger_check_seconds):
        return 0
    ledger.forget_settled(client, time.time() - settled_memory_seconds(settings))
    lost = ledger.lost_batches(client, settings.ledger_grace_seconds)
    for batch_id, batch in lost.items():
        token = request_ids.enter(*batch.request_ids)
        try:
            publish(batch.messages, batch_id)
        finally:
            request_ids.leave(token)
    if lost:
        ledger.mark_resent(client, list(lost))
        logger.warning("sent again %d batches lost between the broker and the workers", len(lost))
    return len(lost)


class LedgerCheck(bootsteps.StartStopStep):
    """Runs `resend_lost_batches` on the consumer's timer every LEDGER_CHECK_SECONDS.

    A consumer step, not a worker step: when the broker connection drops, Celery resets
    the event loop's timer and restarts the consumer steps, so this one starts again.
    """

    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        self.timer_entry: Any = None

    def start(self, consumer: Any) -> None:
        flask_app: Flask = consumer.app.flask_app
        settings: Settings = flask_app.extensions["settings"]
        self.timer_entry = consumer.timer.call_repeatedly(
            settings.ledger_check_seconds, self.check, (flask_app,)
        )

    def stop(self, consumer: Any) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop

    @staticmethod
    def check(flask_app: Flask) -> None:
        with flask_app.app_context():
            try:
                resend_lost_batches(redis_store.client, flask_app.extensions["settings"])
            except RedisError as error:
                logger.warning("ledger check skipped, Redis unreachable: %s", error)


# A compactor round costs MongoDB work per rollup it rewrites, however many batches it adds.
# While messages wait in the queue, it rests REST_PER_ROUND times as long as the round took
# (at least the configured interval): rounds grow and come less often, each adding more
# batches, so compaction takes at most a quarter of the time and storing batches keeps the
# rest. Once the queue is empty there is nothing to leave the time to: the rest ends.
REST_PER_ROUND = 3


def rest_after(round_seconds: float, interval: float, queue_waiting: bool) -> float:
    """Seconds the compactor waits after a round that took `round_seconds`."""
    return max(interval, REST_PER_ROUND * round_seconds) if queue_waiting else interval


def rest(
    stopping: threading.Event, round_seconds: float, interval: float, queue_waiting: Callable[[], bool]
) -> bool:
    """Wait after a round (`rest_after`), asking every interval whether messages still wait,
    so a rest decided while the queue was full ends once it is empty; False if `stopping`
    is set meanwhile."""
    checks = 0
    while not stopping.wait(interval):
        checks += 1
        if checks * interval >= rest_after(round_seconds, interval, queue_waiting()):
            return True
    return False


class ThreadStep(bootsteps.StartStopStep):
    """A worker step whose work runs in a thread of the worker's main process rather than on
    the consumer's timer: its MongoDB I/O must not stall the handing out of messages."""

    # How long stopping waits for the work in hand.
    join_seconds: float = 10

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start_thread(self, name: str, *args: Any) -> None:
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, args=args, name=name, daemon=True)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=self.join_seconds)
            self.thread = None

    shutdown = stop


# How often a compactor's thread prunes a batch of visitors' states per shard: a prune may
# read every state of the shard on FerretDB, which answers no query from a secondary index.
PRUNE_INTERVAL_SECONDS = 600.0


def prune_visit_states(flask_app: Flask) -> None:
    """Prune a batch of stale visitors' states (`compactor.prune_visit_states`), logging a
    failure: the next time tries again."""
    with flask_app.app_context():
        try:
            pruned = compactor.prune_visit_states(mongo.db, redis_store.client, datetime.now(UTC))
        except (RedisError, PyMongoError) as error:  # the lock lost too
            logger.warning("visitors' states not pruned this time: %s", error)
            return
    if pruned:
        logger.info("pruned %d visitors' states", pruned)


class RollupCompactor(ThreadStep):
    """Runs `compactor.compact`, resting between rounds (`rest`). Every worker runs one; the
    compactor's lock lets one at a time work."""

    join_seconds = compactor.LOCK_SECONDS

    def start(self, worker: Any) -> None:
        flask_app: Flask = worker.app.flask_app
        self.start_thread(
            "rollup-compactor", flask_app, flask_app.extensions["settings"].compact_interval_seconds
        )

    def run(self, flask_app: Flask, interval: float) -> None:
        took = 0.0
        pruned_at = time.monotonic()
        while rest(self.stopping, took, interval, partial(queue_waiting, flask_app)):
            started = time.monotonic()
            if started - pruned_at >= PRUNE_INTERVAL_SECONDS:
                pruned_at = started
                prune_visit_states(flask_app)
            with flask_app.app_context():
                try:
                    added = compactor.compact(mongo.db, redis_store.client, Caps.of(current_settings()))
                except (RedisError, PyMongoError, StaleWriteError) as error:
                    logger.warning("rollup compaction skipped this round: %s", error)
                    added = 0
                except Exception:  # a bug must not end compaction for good: try again next round
                    logger.exception("rollup compaction failed this round")
                    added = 0
            took = time.monotonic() - started
            if added:
                logger.info("added %d batches into the rollups in %.2f s", added, took)


def queue_waiting(flask_app: Flask) -> bool:
    """Whether messages wait in the queue (taken to be so while Redis is unreachable)."""
    with flask_app.app_context():
        try:
            return snapshot.queue_depth(redis_store.client) > 0
        except RedisError:
            return True


RETENTION_LOCK_KEY = "retention:lock"
# The site the next sweep starts with, after a sweep cut short (whichever worker sweeps next).
RETENTION_CURSOR_KEY = "retention:next-site"
# Rest between two batches of a sweep, for ingestion's writes.
RETENTION_PAUSE_SECONDS = 0.05


def sweep_expired(
    db: Database[Any], client: redis.Redis, settings: Settings, stopping: threading.Event
) -> retention.Sweep | None:
    """Sweep expired raw events, if no other worker's sweep holds the lock (None then): one
    bounded sweep after another, at once, until one reaches the end (or the worker stops),
    each starting with the site after the one the last was cut short in, resting between
    batches. What they did in all."""
    lock_seconds = settings.retention_interval_seconds
    if not client.set(RETENTION_LOCK_KEY, "1", nx=True, ex=lock_seconds):
        return None
    total = retention.Sweep()
    while True:
        cursor = client.get(RETENTION_CURSOR_KEY)
        swept = retention.sweep(
            db,
            datetime.now(UTC),
            settings.event_retention_days,
            batch_size=retention.BATCH_SIZE,
            seconds=retention.SWEEP_SECONDS,
            pause=lambda: not stopping.wait(RETENTION_PAUSE_SECONDS),
            first_site=cursor.decode() if isinstance(cursor, bytes) else cursor,
        )
        total.deleted += swept.deleted
        total.sites = max(total.sites, swept.sites)
        total.finished = swept.finished
        if swept.finished:
            client.delete(RETENTION_CURSOR_KEY)
            return total
        client.set(RETENTION_CURSOR_KEY, swept.next_site or "")
        if stopping.is_set():
            return total
        # Still this worker's turn: the lock lives a whole interval, a sweep far less.
        client.expire(RETENTION_LOCK_KEY, lock_seconds)


class RetentionSweeper(ThreadStep):
    """Runs `sweep_expired` every RETENTION_INTERVAL_SECONDS, with EVENT_RETENTION_DAYS set;
    the lock lets one worker at a time sweep."""

    def start(self, worker: Any) -> None:
        flask_app: Flask = worker.app.flask_app
        settings: Settings = flask_app.extensions["settings"]
        if settings.event_retention_days > 0:
            self.start_thread("retention", flask_app, settings)

    def run(self, flask_app: Flask, settings: Settings) -> None:
        while not self.stopping.wait(settings.retention_interval_seconds):
            with flask_app.app_context():
                try:
                    swept = sweep_expired(mongo.db, redis_store.client, settings, self.stopping)
                except (RedisError, PyMongoError) as error:
                    logger.warning("retention sweep skipped: %s", error)
                    continue
            if swept and swept.deleted:
                logger.info("deleted %d expired raw events of %d sites", swept.deleted, swept.sites)
