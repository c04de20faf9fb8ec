"""The `rollups` collection (tallies of a site's UTC quarter hour, hour, day or week, keyed by
`Bucket.id`, written only by the compactor) and `rollup_batches` (one document per batch the
compactor has added into them, keyed by batch id).

Each rollup carries the fencing token (`fence`) of the compactor's hold on its shard that
wrote it, and the hold's own random token (`holder`) (`app/rollups/lease.py`). On MongoDB a
write replaces a rollup only if the stored one carries a smaller fence, or the same fence of
the same hold, in the same atomic operation: a compactor that stalled past its lock's expiry
cannot overwrite what a newer holder wrote, whenever its write lands (an upsert that finds the
rollup fenced off fails on the duplicate `_id`: `StaleWriteError`, which names the fence it
was refused for). A rollup that comes to count nothing is never deleted, but kept empty with
its fence (a tombstone): deleted, it would let a stalled holder's upsert bring back its tally.
FerretDB v1.24.2 cannot do this: it reads the document by `_id` from SQLite, checks the rest
of the filter (`fence`) in Go, and then replaces the document by `_id` alone, unconditionally,
with no lock between its read and its write. So on FerretDB the filter is `_id` alone, and the
fence there is the compactor's lock check just before each write command: a stale write needs
a holder stalled between that check and FerretDB applying the command for longer than the
lock lives, and is one command at most.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ReplaceOne
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
    """A rollup write was refused: a newer holder of the compactor's lock wrote the rollup, or
    one whose fence came from a counter that later went back. `fence`: the largest stored
    fence among the rollups refused."""

    def __init__(self, message: str, fence: int) -> None:
        super().__init__(message)
        self.fence = fence


def _nothing() -> None:
    """No check before a write."""


def rollup_documents(db: Database[Any], rollup_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored rollups among `rollup_ids`, by id."""
    return find_by_ids(db[ROLLUPS], rollup_ids)


def weeks_with_rollups(db: Database[Any]) -> list[tuple[str, datetime]]:
    """Every site-week with a stored week rollup, as (site id, the week's first instant): a
    scan of the collection, for migrations."""
    weeks = db[ROLLUPS].find({"level": "week"}, {"site_id": 1, "start": 1})
    return sorted((week["site_id"], _aware(week["start"])) for week in weeks)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stored_rollups(db: Database[Any], rollup_ids: Iterable[str]) -> set[str]:
    """Those of `rollup_ids` that are stored (their ids only are read)."""
    return set(find_by_ids(db[ROLLUPS], rollup_ids, fields=("_id",)))


def rollup_document(
    bucket: Bucket, tally: Tally, through: str, fence: int = 0, holder: str = ""
) -> dict[str, Any]:
    """The stored form of a rollup: its tally packed, the last stream entry it holds, and the
    fencing token and the holder's token of the compactor's hold that writes it."""
    return {
        "_id": bucket.id,
        "site_id": bucket.site_id,
        "level": bucket.level,
        "start": bucket.start,
        "events": tally.events,
        "tally": tally.pack(),
        "through": through,
        "fence": fence,
        "holder": holder,
    }


def save_rollups(
    db: Database[Any],
    documents: Sequence[dict[str, Any]],
    new: Collection[str] = frozenset(),
    before_each_write: Callable[[], None] = _nothing,
) -> None:
    """Store rollups, each unless a newer holder of the compactor's lock wrote it (see the
    module's docstring). Only the compactor writes rollups; it passes its lock check as
    `before_each_write`, run before every command.

    Those whose ids are in `new` were found absent under the compactor's lock: they are
    inserted, all in one command, because FerretDB inserts a command's documents in one
    transaction but replaces each in a transaction of its own, at many times the cost (one
    that counts nothing is not stored at all). One stored meanwhile anyway is replaced. The
    others are replaced a few dozen to a command, those that count nothing by a tombstone.
    """
    inserted = [document for document in documents if document["_id"] in new and document["events"]]
    replaced = [document for document in documents if document["_id"] not in new]
    replaced += _insert_new(db, inserted, before_each_write)
    fenced = not is_ferretdb(db)
    for start in range(0, len(replaced), WRITES_PER_COMMAND):
        part = replaced[start : start + WRITES_PER_COMMAND]
        before_each_write()
        try:
            db[ROLLUPS].bulk_write(
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
                    "a newer holder of the compactor's lock wrote these rollups", _largest_fence(db, refused)
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


def _largest_fence(db: Database[Any], rollup_ids: Iterable[str]) -> int:
    stored = find_by_ids(db[ROLLUPS], rollup_ids, fields=("fence",))
    return max((document.get("fence", 0) for document in stored.values()), default=0)


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
