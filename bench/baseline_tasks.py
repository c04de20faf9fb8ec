"""The designs bench/worker.py compares the project's batch messages with; never part of
the product. Loaded into a bench worker with `-I bench.baseline_tasks`.

- naive: one message and one task per event, one `insert_one` each (the seed's design);
- celery-batches: one message per event, buffered by the worker and stored with one
  `insert_many` per flush.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import shared_task
from celery_batches import Batches, SimpleRequest

from app.extensions import mongo
from app.store import events as event_store

FLUSH_EVERY = 100
FLUSH_INTERVAL_SECONDS = 0.1


@shared_task(name="bench.persist_event_naive")
def persist_event_naive(message: dict[str, Any]) -> None:
    mongo.db[event_store.EVENTS].insert_one(event_store.event_document(message, datetime.now(UTC)))


@shared_task(
    base=Batches,
    name="bench.persist_event_buffered",
    flush_every=FLUSH_EVERY,
    flush_interval=FLUSH_INTERVAL_SECONDS,
)
def persist_event_buffered(requests: list[SimpleRequest]) -> None:
    event_store.insert_events(mongo.db, [request.args[0] for request in requests])
