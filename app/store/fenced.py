"""Writes of documents that one holder of a compactor's shard lock writes at a time (rollups,
visits and visitors' states), each carrying the fencing token of the hold that wrote it
(`fence`) and the hold's own random token (`holder`) (`app/rollups/lease.py`), so that a
holder that stalled past its lock's expiry cannot overwrite what a newer holder wrote.

On MongoDB a write replaces a document only if the stored one carries a smaller fence, or
the same fence of the same hold, in the same atomic operation (an upsert that finds the
document fenced off fails on the duplicate `_id`: `StaleWriteError`, which names the fence
it was refused for). FerretDB v1.24.2 cannot do this (app/store/rollups.py says why): there
the filter is `_id` alone, and the fence is the holder's lock check just before each write
command.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from pymongo import ReplaceOne
from pymongo.collection import Collection as MongoCollection
from pymongo.errors import BulkWriteError

from app.store import DUPLICATE_KEY, find_by_ids, is_ferretdb, only_duplicates

# Writes sent in one command: well below the size of update command that FerretDB never
# answers, and still few round trips a round ("Writes per command" in docs/local-mongodb.md).
WRITES_PER_COMMAND = 50


class StaleWriteError(RuntimeError):
    """A fenced write was refused: a newer holder of the compactor's lock wrote the document,
    or one whose fence came from a counter that later went back. `fence`: the largest stored
    fence among the documents refused."""

    def __init__(self, message: str, fence: int) -> None:
        super().__init__(message)
        self.fence = fence


def nothing() -> None:
    """No check before a write."""


def save_fenced(
    collection: MongoCollection[Any],
    documents: Sequence[dict[str, Any]],
    new: Collection[str] = frozenset(),
    before_each_write: Callable[[], None] = nothing,
) -> None:
    """Store documents, each unless a newer holder wrote it; `before_each_write` (the
    holder's lock check) runs before every command.

    Those whose ids are in `new` were found absent under the lock: they are inserted, all in
    one command, because FerretDB inserts a command's documents in one transaction but
    replaces each in a transaction of its own, at many times the cost. One stored meanwhile
    anyway is replaced. The others are replaced a few dozen to a command.
    """
    inserted = [document for document in documents if document["_id"] in new]
    replaced = [document for document in documents if document["_id"] not in new]
    replaced += _insert_new(collection, inserted, before_each_write)
    fenced = not is_ferretdb(collection.database)
    for start in range(0, len(replaced), WRITES_PER_COMMAND):
        part = replaced[start : start + WRITES_PER_COMMAND]
        before_each_write()
        try:
            collection.bulk_write(
                [ReplaceOne(_unless_newer(document, fenced), document, upsert=True) for document in part],
                ordered=False,
            )
        except BulkWriteError as error:
            fenced_off = [
                failure for failure in error.details["writeErrors"] if failure["code"] == DUPLICATE_KEY
            ]
            if fenced and fenced_off:
                refused = [part[failure["index"]]["_id"] for failure in fenced_off]
                raise StaleWriteError(
                    f"a newer holder of the compactor's lock wrote these {collection.name}",
                    _largest_fence(collection, refused),
                ) from error
            raise


def _unless_newer(document: dict[str, Any], fenced: bool) -> dict[str, Any]:
    """The filter of a write of `document`: its `_id`, and where the server applies the fence
    atomically (MongoDB), no stored fence larger than the document's, nor the same fence of
    another hold (two holds draw the same number from a counter that went back)."""
    if not fenced:
        return {"_id": document["_id"]}
    fence = document.get("fence", 0)
    newer = [{"fence": {"$gt": fence}}, {"fence": fence, "holder": {"$ne": document.get("holder", "")}}]
    return {"_id": document["_id"], "$nor": newer}


def _largest_fence(collection: MongoCollection[Any], ids: Iterable[str]) -> int:
    stored = find_by_ids(collection, ids, fields=("fence",))
    return max((document.get("fence", 0) for document in stored.values()), default=0)


def _insert_new(
    collection: MongoCollection[Any], documents: Sequence[dict[str, Any]], before_write: Callable[[], None]
) -> list[dict[str, Any]]:
    """Insert documents; return those already stored, to be replaced instead."""
    if not documents:
        return []
    before_write()
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if not only_duplicates(error):
            raise
        return [documents[failure["index"]] for failure in error.details["writeErrors"]]
    return []
