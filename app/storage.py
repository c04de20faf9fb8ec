"""The one place that knows how events are stored: collection names, indexes, documents, filters.

Tasks and reporting call these functions; no other module builds a Mongo document or filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.rollups import Bucket, Tally

EVENTS = "events"
# Events that could not be stored: the original message, the error and the time.
DEAD_EVENTS = "dead_events"
# Tallies of a site's UTC hour or day (see app/rollups.py), keyed by `rollups.rollup_id`.
ROLLUPS = "rollups"
# One document per batch the compactor has added into the rollups, keyed by batch id.
ROLLUP_BATCHES = "rollup_batches"
DUPLICATE_KEY = 11000
# Lookups by `_id` one reporting request runs at once.
CONCURRENT_LOOKUPS = 8

EVENT_INDEXES = [
    IndexModel([("site_id", ASCENDING)]),
    IndexModel([("user_id", ASCENDING)]),
    IndexModel([("timestamp", ASCENDING)]),
    IndexModel([("site_id", ASCENDING), ("timestamp", ASCENDING)]),
    # Lets an operator find an event by the id its client sent. Uniqueness comes from `_id`,
    # which is the event_id, so a redelivered or retried message is a no-op for stored events.
    IndexModel([("event_id", ASCENDING)]),
]


def ensure_indexes(db: Database[Any]) -> None:
    """Create the indexes of the contract; a no-op for those that already exist."""
    db[EVENTS].create_indexes(EVENT_INDEXES)


def event_document(message: Mapping[str, Any], now: datetime, batch_id: str | None = None) -> dict[str, Any]:
    """The stored form of one queued event message (see `app.schemas.EventSchema`).

    `_id` is the event_id: a server finds and deduplicates events by `_id` fastest.
    `batch_id` records which queued batch stored the event (see `owned_events`).
    """
    return {
        "_id": message["event_id"],
        "event_id": message["event_id"],
        "batch_id": batch_id,
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
    """What storing a batch did: events new to the store, events it already held, and events
    the store refused."""

    inserted: list[Mapping[str, Any]] = field(default_factory=list)
    # The stored documents of `inserted`, in the same order.
    documents: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[Mapping[str, Any]] = field(default_factory=list)
    rejected: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)


def insert_events(
    db: Database[Any], messages: Sequence[Mapping[str, Any]], batch_id: str | None = None
) -> InsertOutcome:
    """Store queued event messages of one batch in one round trip.

    Events already stored (same `event_id`) are skipped, so storing the same messages again
    changes nothing. Events the server refuses for any other reason come back in `rejected`
    with the server's message. Connection errors and timeouts are raised.
    """
    if not messages:
        return InsertOutcome()
    now = datetime.now(UTC)
    documents = [event_document(m, now, batch_id) for m in messages]
    try:
        db[EVENTS].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        failed = {e["index"]: e for e in error.details["writeErrors"]}
        return InsertOutcome(
            inserted=[m for i, m in enumerate(messages) if i not in failed],
            documents=[d for i, d in enumerate(documents) if i not in failed],
            duplicates=[messages[i] for i, e in failed.items() if e["code"] == DUPLICATE_KEY],
            rejected=[
                (messages[i], e.get("errmsg", "rejected"))
                for i, e in failed.items()
                if e["code"] != DUPLICATE_KEY
            ],
        )
    return InsertOutcome(inserted=list(messages), documents=documents)


def owned_events(db: Database[Any], batch_id: str, event_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The stored events among `event_ids` that batch `batch_id` stored (not another batch
    carrying the same event, such as a client's retry)."""
    stored = (db[EVENTS].find_one({"_id": event_id}) for event_id in event_ids)
    return [event for event in stored if event is not None and event.get("batch_id") == batch_id]


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


def events_between(db: Database[Any], site_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A site's stored events with `start <= timestamp < end`: what statistics count, and
    which batch stored each event when."""
    fields = ("site_id", "event_type", "path", "user_id", "timestamp", "batch_id", "created_at")
    projection = {"_id": 0, **dict.fromkeys(fields, 1)}
    return list(db[EVENTS].find(site_events_filter(site_id, start, end), projection))


def rollup_documents(db: Database[Any], rollup_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored rollups among `rollup_ids`, by id.

    One lookup per id rather than one `$in` query: on FerretDB only a filter on `_id` alone is
    answered from an index; anything else scans the collection. The lookups run a few at a
    time (threads, or greenlets under gunicorn's gevent workers), so the server's cores share them.
    """
    wanted = list(dict.fromkeys(rollup_ids))
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(CONCURRENT_LOOKUPS, len(wanted))) as pool:
        found = list(pool.map(lambda rollup_id: db[ROLLUPS].find_one({"_id": rollup_id}), wanted))
    return {document["_id"]: document for document in found if document is not None}


def rollup_document(bucket: Bucket, tally: Tally, through: str) -> dict[str, Any]:
    """The stored form of a rollup: its tally packed, and the last stream entry it holds."""
    return {
        "_id": bucket.id,
        "site_id": bucket.site_id,
        "level": bucket.level,
        "start": bucket.start,
        "events": tally.events,
        "tally": tally.pack(),
        "through": through,
    }


def save_rollup(db: Database[Any], document: dict[str, Any]) -> None:
    """Store a rollup, or remove it when it counts nothing. Only the compactor writes rollups."""
    if document["events"]:
        db[ROLLUPS].replace_one({"_id": document["_id"]}, document, upsert=True)
    else:
        db[ROLLUPS].delete_one({"_id": document["_id"]})


def applied_batches(db: Database[Any], batch_ids: Iterable[str]) -> set[str]:
    """The batches among `batch_ids` already added into the rollups."""
    return {batch_id for batch_id in batch_ids if db[ROLLUP_BATCHES].find_one({"_id": batch_id}) is not None}


def mark_batches_applied(db: Database[Any], batch_ids: Iterable[str]) -> None:
    """Record batches as added into the rollups; recording one again is a no-op."""
    now = datetime.now(UTC)
    documents = [{"_id": batch_id, "applied_at": now} for batch_id in batch_ids]
    if not documents:
        return
    try:
        db[ROLLUP_BATCHES].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if any(e["code"] != DUPLICATE_KEY for e in error.details["writeErrors"]):
            raise
