"""MongoDB: one module per collection, the only place that builds a document, a filter or a
pipeline. Tasks, rollups and reporting call these functions.

Written to the subset of MongoDB that FerretDB v1.24.2 also serves (the local default):
reads by `_id` alone are the fast ones there, `$group` knows only `$sum` and `$count`, and
updates are not atomic, so derived data is insert-only or has a single writer.
"""

from __future__ import annotations

from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


def only_duplicates(error: BulkWriteError) -> bool:
    """Whether every write a bulk insert refused was refused as a duplicate `_id`."""
    return all(e["code"] == DUPLICATE_KEY for e in error.details["writeErrors"])
