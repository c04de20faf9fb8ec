"""The `dead_events` collection: events that could not be stored, with the error and the
time, keyed as their event is, until a replay (`make replay-dead`) stores them.

A letter leaves only once its event is stored: the worker that stores a replayed event (or
finds it stored) removes its letter by `_id` alone, the one delete FerretDB does exactly (it
reads what any other filter matches, then deletes what it read by `_id`, in a transaction
of its own). Each letter holds one accepted copy of its event: that of the batch
that first dead-lettered it (`batch_id`), which a letter written again for the same event
keeps, so that reconciliation counts every copy once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DeleteOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.queue import counters
from app.store import CONCURRENT_LOOKUPS, find_by_ids, insert_new, only_duplicates, raise_unconfirmed
from app.store.events import PREVIOUS_LAYOUT, event_key
from app.store.fenced import WRITES_PER_COMMAND

DEAD_EVENTS = "dead_events"


def dead_letter(
    db: Database[Any], failures: Iterable[tuple[Mapping[str, Any], str]], *, batch_id: str
) -> set[str]:
    """Keep the events of batch `batch_id` that could not be stored, with the error and the
    time; return the keys of those whose letter already held another batch's copy (a client
    that sent the event again, or a replay that failed again), so that this copy is a repeat.

    An event that fails again keeps one letter, the latest failure's, with the batch of the
    first; a letter of an earlier version (no batch) counts as another batch's.
    """
    now = datetime.now(UTC)
    documents = [letter(message, error, now, batch_id) for message, error in failures]
    if not documents:
        return set()
    written_before = [documents[index] for index in insert_new(db[DEAD_EVENTS], documents)]
    return _replace(db, written_before, batch_id) if written_before else set()


def _replace(db: Database[Any], documents: Sequence[dict[str, Any]], batch_id: str) -> set[str]:
    """Write these letters over those their events have, each keeping its first batch; the
    keys of letters that held another batch's copy."""
    earlier = find_by_ids(db[DEAD_EVENTS], [document["_id"] for document in documents])
    held_elsewhere = set()
    writes = []
    for document in documents:
        first = earlier.get(document["_id"])
        if first is not None:  # (gone since the insert was refused: this batch's letter now)
            document["batch_id"] = first.get("batch_id")
            if document["batch_id"] != batch_id:
                held_elsewhere.add(document["_id"])
        writes.append(ReplaceOne({"_id": document["_id"]}, document, upsert=True))
    for start in range(0, len(writes), WRITES_PER_COMMAND):
        try:
            db[DEAD_EVENTS].bulk_write(writes[start : start + WRITES_PER_COMMAND], ordered=False)
        except BulkWriteError as error:
            raise_unconfirmed(error)
            # Two upserts of one letter at once can collide on FerretDB; either letter will do.
            if not only_duplicates(error):
                raise
    return held_elsewhere


def letter(message: Mapping[str, Any], error: str, failed_at: datetime, batch_id: str) -> dict[str, Any]:
    """The dead letter of an event message of batch `batch_id`, with the site and UTC day it
    counts on."""
    site_id, day = counters.site_day(message)
    return {
        "_id": event_key(message),
        "batch_id": batch_id,
        "event": dict(message),
        "error": error,
        "failed_at": failed_at,
        "site_id": site_id,
        "day": day,
    }


def dead_letters(db: Database[Any], failed_by: datetime | None = None) -> Iterator[dict[str, Any]]:
    """The dead letters (of failures up to `failed_by`, if given), oldest first."""
    query = {} if failed_by is None else {"failed_at": {"$lte": failed_by}}
    return iter(db[DEAD_EVENTS].find(query).sort([("failed_at", ASCENDING), ("_id", ASCENDING)]))


def letters_of(db: Database[Any], keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The letters among these event keys, by key."""
    return find_by_ids(db[DEAD_EVENTS], keys)


def remove(db: Database[Any], keys: Collection[str]) -> set[str]:
    """Remove the letters of these event keys, whose events are stored; the keys of those
    this call removed (of two removing one letter at once, one removes it).

    One delete by `_id` alone per letter, a few at a time (as `find_by_ids` looks up): any
    other filter FerretDB resolves by a scan, then deletes by `_id` what the scan found, a
    letter written again meanwhile included.
    """
    if not keys:
        return set()
    collection = db[DEAD_EVENTS]
    with ThreadPoolExecutor(max_workers=min(CONCURRENT_LOOKUPS, len(keys))) as pool:
        deletes = {key: pool.submit(copy_context().run, collection.delete_one, {"_id": key}) for key in keys}
        return {key for key, delete in deletes.items() if delete.result().deleted_count}


def count_dead_letters(db: Database[Any], site_id: str | None = None, day: str | None = None) -> int:
    """Dead letters in all, or of one site's events of one UTC day (YYYY-MM-DD)."""
    return db[DEAD_EVENTS].count_documents({"site_id": site_id, "day": day} if site_id else {})


def previous_layout_letters(db: Database[Any]) -> Iterator[dict[str, Any]]:
    """The letters still keyed as the previous release keyed them (by bare event id)."""
    return iter(db[DEAD_EVENTS].find(PREVIOUS_LAYOUT).batch_size(WRITES_PER_COMMAND))


def rekey_letters(db: Database[Any], letters: Sequence[dict[str, Any]]) -> int:
    """Move these letters of the previous layout under their events' keys; return how many.
    A letter a worker wrote meanwhile under the new key stays, as a letter written again does."""
    if not letters:
        return 0
    insert_new(db[DEAD_EVENTS], [{**letter, "_id": event_key(letter["event"])} for letter in letters])
    db[DEAD_EVENTS].bulk_write([DeleteOne({"_id": letter["_id"]}) for letter in letters], ordered=False)
    return len(letters)
