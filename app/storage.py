"""The one place that knows how events are stored: collection names, indexes, documents, filters.

Tasks and reporting call these functions; no other module builds a Mongo document or filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError

EVENTS = "events"
DUPLICATE_KEY = 11000

EVENT_INDEXES = [
    IndexModel([("site_id", ASCENDING)]),
    IndexModel([("user_id", ASCENDING)]),
    IndexModel([("timestamp", ASCENDING)]),
    IndexModel([("site_id", ASCENDING), ("timestamp", ASCENDING)]),
    # Makes a redelivered or retried message a no-op for the events it already stored.
    IndexModel([("event_id", ASCENDING)], unique=True),
]


def ensure_indexes(db: Database[Any]) -> None:
    """Create the indexes of the contract; a no-op for those that already exist."""
    db[EVENTS].create_indexes(EVENT_INDEXES)


def event_document(message: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The stored form of one queued event message (see `app.schemas.EventSchema`)."""
    return {
        "event_id": message["event_id"],
        "site_id": message["site_id"],
        "event_type": message["event_type"],
        "path": message.get("path"),
        "user_id": message.get("user_id"),
        "timestamp": datetime.fromisoformat(message["timestamp"]).astimezone(UTC),
        "created_at": now,
        "updated_at": now,
    }


def insert_events(db: Database[Any], messages: Iterable[Mapping[str, Any]]) -> int:
    """Store queued event messages; return how many were new.

    Events already stored (same `event_id`) are skipped, so running this again for the
    same messages changes nothing. Any other write error is raised.
    """
    now = datetime.now(UTC)
    documents = [event_document(message, now) for message in messages]
    if not documents:
        return 0
    try:
        return len(db[EVENTS].insert_many(documents, ordered=False).inserted_ids)
    except BulkWriteError as error:
        other_errors = [e for e in error.details["writeErrors"] if e["code"] != DUPLICATE_KEY]
        if other_errors:
            raise
        inserted: int = error.details["nInserted"]
        return inserted


def utc_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval [start, end) of a calendar day."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def site_events_filter(site_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Events of one site with `start <= timestamp < end`."""
    return {"site_id": site_id, "timestamp": {"$gte": start, "$lt": end}}


def with_value(events_filter: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Narrow a filter to events whose optional `field` (path, user_id) is set and not empty."""
    return {**events_filter, field: {"$nin": [None, ""]}}
