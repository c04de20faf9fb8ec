"""The `rollups` collection (tallies of a site's UTC hour, day or week, keyed by
`Bucket.id`, written only by the compactor) and `rollup_batches` (one document per batch the
compactor has added into them, keyed by batch id).

Each rollup carries the fencing token (`fence`) of the compactor's hold on its shard that
wrote it (`app/rollups/lease.py`). On MongoDB a write replaces or deletes a rollup only if the
stored one carries no larger token, in the same atomic operation: a compactor that stalled
past its lock's expiry cannot overwrite what a newer holder wrote, whenever its write lands
(an upsert that finds the rollup fenced off fails on the duplicate `_id`: `StaleWriteError`).
FerretDB v1.24.2 cannot do this: it pushes down to SQLite only a filter on `_id` alone, so a
filter of `_id` and `fence` scans the whole collection in Go for each write, and it then
replaces the document by `_id` alone, unconditionally, with no lock between its read and its
write. So on FerretDB the filter is `_id` alone, and the fence there is the compactor's lock
check just before each write command: a stale write needs a holder stalled between that check
and FerretDB applying the command for longer than the lock lives, and is one command at most.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.rollups.buckets import Bucket
from app.rollups.tally import Tally
from app.store import DUPLICATE_KEY, find_by_ids, is_ferretdb, only_duplicates

ROLLUPS = "rollups"
ROLLUP_BATCHES = "rollup_batches"
# Writes sent in one command: well below the size of update command that FerretDB never
# answers, and still few round trips a round ("Writes per command" in docs/local-mongodb.md).
WRITES_PER_COMMAND = 50


class StaleWriteError(RuntimeError):
    """A rollup write was refused: a newer holder of the compactor's lock wrote the rollup."""


def _nothing() -> None:
    """No check before a write."""


def rollup_documents(db: Database[Any], rollup_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored rollups among `rollup_ids`, by id."""
    return find_by_ids(db[ROLLUPS], rollup_ids)


def rollup_document(bucket: Bucket, tally: Tally, through: str, fence: int = 0) -> dict[str, Any]:
    """The stored form of a rollup: its tally packed, the last stream entry it holds, and the
    fencing token of the compactor's hold that writes it."""
    return {
        "_id": bucket.id,
        "site_id": bucket.site_id,
        "level": bucket.level,
        "start": bucket.start,
        "events": tally.events,
        "tally": tally.pack(),
        "through": through,
        "fence": fence,
    }


def save_rollups(
    db: Database[Any],
    documents: Sequence[dict[str, Any]],
    new: Collection[str] = frozenset(),
    before_each_write: Callable[[], None] = _nothing,
) -> None:
    """Store rollups, removing those that count nothing, each unless a newer holder of the
    compactor's lock wrote it (see the module's docstring). Only the compactor writes rollups;
    it passes its lock check as `before_each_write`, run before every command.

    Those whose ids are in `new` were found absent under the compactor's lock: they are
    inserted, all in one command, because FerretDB inserts a command's documents in one
    transaction but replaces each in a transaction of its own, at many times the cost. One
    stored meanwhile anyway is replaced. The others are replaced a few dozen to a command.
    """
    inserted = [document for document in documents if document["_id"] in new and document["events"]]
    replaced = [document for document in documents if document["_id"] not in new]
    replaced += _insert_new(db, inserted, before_each_write)
    fenced = not is_ferretdb(db)
    writes: list[ReplaceOne[dict[str, Any]] | DeleteOne] = [
        ReplaceOne(_unless_newer(document, fenced), document, upsert=True)
        if document["events"]
        else DeleteOne(_unless_newer(document, fenced))
        for document in replaced
    ]
    for start in range(0, len(writes), WRITES_PER_COMMAND):
        before_each_write()
        try:
            db[ROLLUPS].bulk_write(writes[start : start + WRITES_PER_COMMAND], ordered=False)
        except BulkWriteError as error:
            if fenced and any(failure["code"] == DUPLICATE_KEY for failure in error.details["writeErrors"]):
                raise StaleWriteError("a newer holder of the compactor's lock wrote these rollups") from error
            raise


def _unless_newer(document: dict[str, Any], fenced: bool) -> dict[str, Any]:
    """The filter of a write of `document`: its `_id`, and where the server applies the fence
    atomically (MongoDB), a stored fence no larger than the document's (or none at all)."""
    if not fenced:
        return {"_id": document["_id"]}
    return {"_id": document["_id"], "fence": {"$not": {"$gt": document.get("fence", 0)}}}


def _insert_new(
    db: Database[Any], documents: Sequence[dict[str, Any]], before_write: Callable[[], None]
) -> list[dict[str, Any]]:
    """Insert rollups; return those already stored, to be replaced instead."""
    if not documents:
        return []
    before_write()
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
