"""The `rollups` collection (tallies of a site's UTC hour, day or week, keyed by
`Bucket.id`, written only by the compactor) and `rollup_batches` (one document per batch the
compactor has added into them, keyed by batch id)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.rollups.buckets import Bucket
from app.rollups.tally import Tally
from app.store import find_by_ids, only_duplicates

ROLLUPS = "rollups"
ROLLUP_BATCHES = "rollup_batches"
# Writes sent in one command: well below the size of update command that FerretDB never
# answers, and still few round trips a round ("Writes per command" in docs/local-mongodb.md).
WRITES_PER_COMMAND = 50


def rollup_documents(db: Database[Any], rollup_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored rollups among `rollup_ids`, by id."""
    return find_by_ids(db[ROLLUPS], rollup_ids)


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


def save_rollups(
    db: Database[Any], documents: Sequence[dict[str, Any]], new: Collection[str] = frozenset()
) -> None:
    """Store rollups, removing those that count nothing. Only the compactor writes rollups.

    Those whose ids are in `new` were found absent under the compactor's lock: they are
    inserted, all in one command, because FerretDB inserts a command's documents in one
    transaction but replaces each in a transaction of its own, at many times the cost. One
    stored meanwhile anyway is replaced. The others are replaced a few dozen to a command.
    """
    inserted = [document for document in documents if document["_id"] in new and document["events"]]
    replaced = [document for document in documents if document["_id"] not in new]
    replaced += _insert_new(db, inserted)
    writes: list[ReplaceOne[dict[str, Any]] | DeleteOne] = [
        ReplaceOne({"_id": document["_id"]}, document, upsert=True)
        if document["events"]
        else DeleteOne({"_id": document["_id"]})
        for document in replaced
    ]
    for start in range(0, len(writes), WRITES_PER_COMMAND):
        db[ROLLUPS].bulk_write(writes[start : start + WRITES_PER_COMMAND], ordered=False)


def _insert_new(db: Database[Any], documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert rollups; return those already stored, to be replaced instead."""
    if not documents:
        return []
    try:
        db[ROLLUPS].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if not only_duplicates(error):
            raise
        return [documents[failure["index"]] for failure in error.details["writeErrors"]]
    return []


def applied_batches(db: Database[Any], batch_ids: Iterable[str]) -> set[str]:
    """The batches among `batch_ids` already added into the rollups."""
    return set(find_by_ids(db[ROLLUP_BATCHES], batch_ids))


def mark_batches_applied(db: Database[Any], batch_ids: Iterable[str]) -> None:
    """Record batches as added into the rollups; recording one again is a no-op."""
    now = datetime.now(UTC)
    documents = [{"_id": batch_id, "applied_at": now} for batch_id in batch_ids]
    if not documents:
        return
    try:
        db[ROLLUP_BATCHES].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if not only_duplicates(error):
            raise
