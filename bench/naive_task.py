"""The naive baseline for bench/worker.py: one task per event, one `insert_one` each.

Loaded into a bench worker with `-I bench.naive_task`; never part of the product.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import shared_task

from app import storage
from app.extensions import mongo


@shared_task(name="bench.persist_event_naive")
def persist_event_naive(message: dict[str, Any]) -> None:
    mongo.db[storage.EVENTS].insert_one(storage.event_document(message, datetime.now(UTC)))
