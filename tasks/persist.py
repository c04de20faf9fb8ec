"""The task that moves queued events into MongoDB."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from celery.utils.time import get_exponential_backoff_interval
from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, NotPrimaryError

from app import storage
from app.config import current_settings
from app.extensions import mongo

# Errors that pass: the server is restarting, unreachable, stepping down or too slow.
TRANSIENT_ERRORS = (AutoReconnect, ConnectionFailure, NotPrimaryError, ExecutionTimeout)


@shared_task(bind=True, name="tasks.persist_events")
def persist_events(self: Task, messages: list[dict[str, Any]]) -> int:
    """Store a list of event messages; retried with exponential backoff and jitter."""
    try:
        return storage.insert_events(mongo.db, messages)
    except TRANSIENT_ERRORS as error:
        settings = current_settings()
        countdown = get_exponential_backoff_interval(
            factor=1,
            retries=self.request.retries,
            maximum=settings.task_retry_backoff_max,
            full_jitter=True,
        )
        raise self.retry(exc=error, countdown=countdown, max_retries=settings.task_max_retries) from error


def enqueue_events(messages: list[dict[str, Any]]) -> None:
    """Put messages on the broker; returns once Redis holds them, raises if it cannot."""
    persist_events.apply_async(args=[messages], retry=True)
