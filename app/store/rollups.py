"""The `rollups` collection (tallies of a site's UTC quarter hour, hour, day or week, keyed by
`Bucket.id`, written only by the compactor) and `rollup_batches` (one document per batch the
compactor has added into them, keyed by batch id).

Each rollup carries the fencing token (`fence`) of the compactor's hold on its shard that
wrote it, and the hold's own random token (`holder`) (`app/rollups/lease.py`). On MongoDB a
write replaces a rollup only if the stored one carries a smaller fence, or the same fence of
the same hold, in the same atomic operation: a compactor that stalled past its lock's expiry
cannot overwrite what a newer holder wrote, whenever its write lands (`app/store/fenced.py`,
shared with the visits). A rollup that comes to count nothing is never deleted, but kept empty with
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

from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.rollups.buckets import Bucket
from app.rollups.tally import Tally
from app.store import find_by_ids, only_duplicates
from app.store.fenced import nothing, save_fenced

ROLLUPS = "rollups"
ROLLUP_BATCHES = "rollup_batches"


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
    before_each_write: Callable[[], None] = nothing,
) -> None:
    """Store rollups, each unless a newer holder of the compactor's lock wrote it
    (`fenced.save_fenced`). Only the compactor writes rollups; it passes its lock check as
    `before_each_write`, run before every command. Those whose ids are in `new` were found
    absent under the compactor's lock and are inserted; one of them that counts nothing is
    not stored at all. The others are replaced, those that count nothing by a tombstone."""
    kept = [document for document in documents if document["_id"] not in new or document["events"]]
    save_fenced(db[ROLLUPS], kept, new, before_each_write)


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
