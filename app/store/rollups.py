"""The `rollups` collection (tallies of a site's UTC hour, day or week, keyed by
`Bucket.id`, written only by the compactor) and `rollup_batches` (one document per batch the
compactor has added into them, keyed by batch id)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.rollups.buckets import Bucket
from app.rollups.tally import Tally
from app.store import only_duplicates

ROLLUPS = "rollups"
ROLLUP_BATCHES = "rollup_batches"
# Lookups by `_id` one reporting request runs at once.
CONCURRENT_LOOKUPS = 8


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
        if not only_duplicates(error):
            raise
