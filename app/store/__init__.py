"""MongoDB: one module per collection, the only place that builds a document, a filter or a
pipeline. Tasks, rollups and reporting call these functions.

Written to the subset of MongoDB that FerretDB v1.24.2 also serves (the local default):
reads by a string `_id` are the fast ones there (equality, `$in`, ranges, in `_id` order:
docs/local-mongodb.md), `$group` knows only `$sum` and `$count`, and updates are not atomic,
so derived data is insert-only or has a single writer. It maintains other indexes but answers
no query from them; a unique one it enforces, refusing a duplicate with code 11000. Where the two
servers are best served differently (indexes, lookups of many ids), `is_ferretdb` decides.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, WriteConcernError

DUPLICATE_KEY = 11000
# Queries by `_id` that one call runs at once on FerretDB.
CONCURRENT_LOOKUPS = 8

_ferretdb_clients: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def only_duplicates(error: BulkWriteError) -> bool:
    """Whether every write a bulk insert refused was refused as a duplicate `_id`, and the
    server confirmed the write concern: under `w: majority` a write whose concern failed may
    yet be rolled back, so it is a failure to retry, not a success."""
    if error.details.get("writeConcernErrors"):
        return False
    return all(e["code"] == DUPLICATE_KEY for e in error.details["writeErrors"])


def is_ferretdb(db: Database[Any]) -> bool:
    """Whether the server is FerretDB, which answers from an index only conditions on a string
    `_id` (asked once per client: its `buildInfo` names FerretDB's version)."""
    client = db.client
    if client not in _ferretdb_clients:
        _ferretdb_clients[client] = "ferretdbVersion" in client.server_info()
    return _ferretdb_clients[client]


def find_by_ids(
    collection: Collection[Any], ids: Iterable[Any], fields: Iterable[str] | None = None
) -> dict[Any, dict[str, Any]]:
    """The documents among `ids` (only their `fields`, if given), by `_id`: one `$in` query on
    MongoDB. On FerretDB the ids are split into a few `$in` queries run at once (threads, or
    greenlets under gunicorn's gevent workers): its build here serves a `$in` of string ids
    from an index, but decodes a query's documents on one core, so large documents such as
    rollups come back faster in parallel parts, and small ones in few round trips."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    projection = None if fields is None else dict.fromkeys(fields, 1)
    if is_ferretdb(collection.database):
        parts = [wanted[i::CONCURRENT_LOOKUPS] for i in range(min(CONCURRENT_LOOKUPS, len(wanted)))]
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            # Each query in the caller's context, so a time bound (pymongo.timeout) holds there too.
            queries = [
                pool.submit(copy_context().run, _find_in, collection, part, projection) for part in parts
            ]
            found = [document for query in queries for document in query.result()]
    else:
        found = _find_in(collection, wanted, projection)
    return {document["_id"]: document for document in found}


def _find_in(
    collection: Collection[Any], ids: list[Any], projection: dict[str, int] | None
) -> list[dict[str, Any]]:
    return list(collection.find({"_id": {"$in": ids}}, projection))


def insert_new(collection: Collection[Any], documents: list[dict[str, Any]]) -> list[int]:
    """Insert the documents not stored yet, in one unordered bulk insert; the positions of
    those refused as duplicates. Any other refusal, or an unconfirmed write concern, raises."""
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        raise_unconfirmed(error)
        if not only_duplicates(error):
            raise
        return [failure["index"] for failure in error.details["writeErrors"]]
    return []


def raise_unconfirmed(error: BulkWriteError) -> None:
    """Raise a bulk write the server applied without meeting its write concern as the failure
    it is: under `w: majority` such a write may still be rolled back, so it must be retried,
    never counted done."""
    concern_errors = error.details.get("writeConcernErrors")
    if concern_errors:
        first = concern_errors[0]
        message = first.get("errmsg", "write concern not met")
        raise WriteConcernError(message, first.get("code"), error.details) from error
