"""The `dead_events` collection: events that could not be stored, with the error and the
time, keyed by event id, until an operator replays them (`make replay-dead`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.queue import counters
from app.store import only_duplicates, raise_unconfirmed

DEAD_EVENTS = "dead_events"


def dead_letter(db: Database[Any], failures: Iterable[tuple[Mapping[str, Any], str]]) -> int:
    """Keep events that could not be stored, with the error and the time; return how many are new.

    Keyed by `event_id`, so dead-lettering the same event again (a redelivered batch) is a no-op.
    """
    now = datetime.now(UTC)
    documents = [letter(message, error, now) for message, error in failures]
    if not documents:
        return 0
    try:
        return len(db[DEAD_EVENTS].insert_many(documents, ordered=False).inserted_ids)
    except BulkWriteError as error:
        raise_unconfirmed(error)
        if not only_duplicates(error):
            raise
        inserted: int = error.details["nInserted"]
        return inserted


def letter(message: Mapping[str, Any], error: str, failed_at: datetime) -> dict[str, Any]:
    """The dead letter of an event message, with the site and UTC day it counts on."""
    site_id, day = counters.site_day(message)
    return {
        "_id": message["event_id"],
        "event": dict(message),
        "error": error,
        "failed_at": failed_at,
        "site_id": site_id,
        "day": day,
    }


def dead_letters(db: Database[Any], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead-lettered events, oldest first."""
    return list(db[DEAD_EVENTS].find().sort("failed_at", ASCENDING).limit(limit))


def remove_dead_letters(db: Database[Any], event_ids: Sequence[str]) -> int:
    return db[DEAD_EVENTS].delete_many({"_id": {"$in": list(event_ids)}}).deleted_count


def count_dead_letters(db: Database[Any], site_id: str | None = None, day: str | None = None) -> int:
    """Dead letters in all, or of one site's events of one UTC day (YYYY-MM-DD)."""
    return db[DEAD_EVENTS].count_documents({"site_id": site_id, "day": day} if site_id else {})
