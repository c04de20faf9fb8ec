"""The one place that knows how events are stored: collection names, indexes, documents, filters.

Tasks and reporting call these functions; no other module builds a Mongo document or filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError

EVENTS = "events"
# Events that could not be stored: the original message, the error and the time.
DEAD_EVENTS = "dead_events"
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


def site_day(message: Mapping[str, Any]) -> tuple[str, str]:
    """The site and UTC day (YYYY-MM-DD) an event message counts on."""
    timestamp = datetime.fromisoformat(message["timestamp"]).astimezone(UTC)
    return message["site_id"], timestamp.date().isoformat()


@dataclass
class InsertOutcome:
    """What storing a batch did: events new to the store, and events the store refused."""

    inserted: list[Mapping[str, Any]] = field(default_factory=list)
    rejected: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)


def insert_events(db: Database[Any], messages: Sequence[Mapping[str, Any]]) -> InsertOutcome:
    """Store queued event messages in one round trip.

    Events already stored (same `event_id`) are skipped, so storing the same messages again
    changes nothing. Events the server refuses for any other reason come back in `rejected`
    with the server's message. Connection errors and timeouts are raised.
    """
    if not messages:
        return InsertOutcome()
    now = datetime.now(UTC)
    try:
        db[EVENTS].insert_many([event_document(m, now) for m in messages], ordered=False)
    except BulkWriteError as error:
        failed = {e["index"]: e for e in error.details["writeErrors"]}
        return InsertOutcome(
            inserted=[m for i, m in enumerate(messages) if i not in failed],
            rejected=[
                (messages[i], e.get("errmsg", "rejected"))
                for i, e in failed.items()
                if e["code"] != DUPLICATE_KEY
            ],
        )
    return InsertOutcome(inserted=list(messages))


def dead_letter(db: Database[Any], failures: Iterable[tuple[Mapping[str, Any], str]]) -> int:
    """Keep events that could not be stored, with the error and the time; return how many are new.

    Keyed by `event_id`, so dead-lettering the same event again (a redelivered batch) is a no-op.
    """
    now = datetime.now(UTC)
    documents = [
        {"_id": message["event_id"], "event": dict(message), "error": error, "failed_at": now}
        for message, error in failures
    ]
    if not documents:
        return 0
    try:
        return len(db[DEAD_EVENTS].insert_many(documents, ordered=False).inserted_ids)
    except BulkWriteError as error:
        if any(e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]):
            raise
        inserted: int = error.details["nInserted"]
        return inserted


def dead_letters(db: Database[Any], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead-lettered events, oldest first."""
    return list(db[DEAD_EVENTS].find().sort("failed_at", ASCENDING).limit(limit))


def remove_dead_letters(db: Database[Any], event_ids: Sequence[str]) -> int:
    return db[DEAD_EVENTS].delete_many({"_id": {"$in": list(event_ids)}}).deleted_count


def count_dead_letters(db: Database[Any]) -> int:
    return db[DEAD_EVENTS].count_documents({})


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
