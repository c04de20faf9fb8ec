"""The `dead_events` collection: events that could not be stored, with the error and the
time, keyed by event id, until an operator replays them (`make replay-dead`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.queue import counters
from app.store import only_duplicates, raise_unconfirmed
from app.store.rollups import WRITES_PER_COMMAND

DEAD_EVENTS = "dead_events"


def dead_letter(db: Database[Any], failures: Iterable[tuple[Mapping[str, Any], str]]) -> int:
    """Keep events that could not be stored, with the error and the time; return how many are new.

    Keyed by `event_id`: an event that fails again (a redelivered or replayed batch) keeps one
    letter, the latest failure's, with a `failure_id` of its own, so that a replay that read
    the letter before removes it no longer (`remove_as_read`).
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
        _replace(db, [documents[failure["index"]] for failure in error.details["writeErrors"]])
        inserted: int = error.details["nInserted"]
        return inserted


def _replace(db: Database[Any], documents: Sequence[dict[str, Any]]) -> None:
    writes = [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in documents]
    for start in range(0, len(writes), WRITES_PER_COMMAND):
        try:
            db[DEAD_EVENTS].bulk_write(writes[start : start + WRITES_PER_COMMAND], ordered=False)
        except BulkWriteError as error:
            raise_unconfirmed(error)
            # Two upserts of one letter at once can collide on FerretDB; either letter will do.
            if not only_duplicates(error):
                raise


def letter(message: Mapping[str, Any], error: str, failed_at: datetime) -> dict[str, Any]:
    """The dead letter of an event message, with the site and UTC day it counts on."""
    site_id, day = counters.site_day(message)
    return {
        "_id": message["event_id"],
        "failure_id": uuid.uuid4().hex,
        "event": dict(message),
        "error": error,
        "failed_at": failed_at,
        "site_id": site_id,
        "day": day,
    }


def dead_letters(db: Database[Any], limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead-lettered events, oldest first."""
    return list(db[DEAD_EVENTS].find().sort("failed_at", ASCENDING).limit(limit))


def remove_as_read(db: Database[Any], letters: Sequence[Mapping[str, Any]]) -> int:
    """Remove these letters, each only if unchanged since it was read: an event that failed
    again meanwhile has a new letter, which stays. (Letters of earlier versions have no
    `failure_id`, which the filter's null matches.)"""
    if not letters:
        return 0
    as_read = [{"_id": letter["_id"], "failure_id": letter.get("failure_id")} for letter in letters]
    return db[DEAD_EVENTS].delete_many({"$or": as_read}).deleted_count


def count_dead_letters(db: Database[Any], site_id: str | None = None, day: str | None = None) -> int:
    """Dead letters in all, or of one site's events of one UTC day (YYYY-MM-DD)."""
    return db[DEAD_EVENTS].count_documents({"site_id": site_id, "day": day} if site_id else {})
