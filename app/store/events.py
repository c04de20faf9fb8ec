"""The `events` collection: the stored events, keyed by event id, with their indexes, and the
queries reporting runs over raw events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.store import DUPLICATE_KEY, find_by_ids, is_ferretdb, raise_unconfirmed
from app.store.errors import is_transient

EVENTS = "events"

# Secondary indexes, on MongoDB only: FerretDB maintains them on every insert but answers
# no query from them (only conditions on `_id`), so there they would cost and not serve.
EVENT_INDEXES = [
    # Raw-event reads: a site's events of a period (reporting's fallback, rebuilds, the cross-check).
    IndexModel([("site_id", ASCENDING), ("timestamp", ASCENDING)], name="site_id_1_timestamp_1"),
    # Lets an operator find an event by the id its client sent. Uniqueness comes from `_id`,
    # which is the event_id, so a redelivered or retried message is a no-op for stored events.
    IndexModel([("event_id", ASCENDING)], name="event_id_1"),
]
# Indexes earlier versions created, dropped where they exist: none served a query.
RETIRED_INDEXES = ("site_id_1", "user_id_1", "timestamp_1")


def ensure_indexes(db: Database[Any]) -> None:
    """Give `events` the indexes its server uses, and drop those it maintains for nothing;
    idempotent."""
    wanted = [] if is_ferretdb(db) else EVENT_INDEXES
    existing = set(db[EVENTS].index_information())
    retired = set(RETIRED_INDEXES) | {index.document["name"] for index in EVENT_INDEXES if not wanted}
    for name in sorted(existing & retired):
        db[EVENTS].drop_index(name)
    if wanted:
        db[EVENTS].create_indexes(wanted)


def event_key(message: Mapping[str, Any]) -> str:
    """The `_id` an event message is stored under, and its dead letter too (the one place
    that says how an event is keyed). The event_id: a server finds and deduplicates events
    by `_id` fastest."""
    key: str = message["event_id"]
    return key


def event_document(message: Mapping[str, Any], now: datetime, batch_id: str | None = None) -> dict[str, Any]:
    """The stored form of one queued event message (see `app.schemas.EventSchema`).

    `batch_id` records which queued batch stored the event (see `owned_events`).
    """
    return {
        "_id": event_key(message),
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
    with the server's message. Connection errors, timeouts, an unmet write concern
    (`WriteConcernError`) and write errors of the server's condition (`is_transient`: a write
    conflict, a busy store) are raised, for the whole batch to be tried again.
    """
    if not messages:
        return InsertOutcome()
    now = datetime.now(UTC)
    documents = [event_document(m, now, batch_id) for m in messages]
    try:
        db[EVENTS].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        raise_unconfirmed(error)
        if is_transient(error):  # a write error of the server's condition (a write conflict ...)
            raise
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


def stored_events(db: Database[Any], event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored events among `event_ids`, by event id."""
    return find_by_ids(db[EVENTS], event_ids)


def owned_events(db: Database[Any], batch_id: str, event_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The stored events among `event_ids` that batch `batch_id` stored (not another batch
    carrying the same event, such as a client's retry)."""
    return [event for event in stored_events(db, event_ids).values() if event.get("batch_id") == batch_id]


def _site_events_filter(site_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Events of one site with `start <= timestamp < end`."""
    return {"site_id": site_id, "timestamp": {"$gte": start, "$lt": end}}


def events_between(db: Database[Any], site_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A site's stored events with `start <= timestamp < end`: what statistics count, and
    which batch stored each event when."""
    fields = ("site_id", "event_type", "path", "user_id", "timestamp", "batch_id", "created_at")
    projection = {"_id": 0, **dict.fromkeys(fields, 1)}
    return list(db[EVENTS].find(_site_events_filter(site_id, start, end), projection))


def count_by_user_and_path(
    db: Database[Any], site_id: str, start: datetime, end: datetime, event_type: str | None
) -> list[dict[str, Any]]:
    """A site's events with `start <= timestamp < end` (of one type, if given) counted by
    (user_id, path), as rows `{"_id": {"user_id", "path"}, "events"}`: `/stats/aggregated`'s
    cross-check, computed by the server.

    FerretDB has no $facet and its $group knows only $sum and $count, so the server counts by
    (user, path) and the caller adds the few rows up.
    """
    events_filter = _site_events_filter(site_id, start, end)
    if event_type is not None:
        events_filter["event_type"] = event_type
    pipeline = [
        {"$match": events_filter},
        {"$group": {"_id": {"user_id": "$user_id", "path": "$path"}, "events": {"$sum": 1}}},
    ]
    return list(db[EVENTS].aggregate(pipeline))
