"""The `user_numbers` and `user_counters` collections: each site's users numbered 1, 2, ...,
so that rollups keep distinct users as bitmaps (`app/rollups/user_ids.py`).

`user_numbers` holds one document per (site, user): `_id` is the site, `\\x1f` (which no site
id holds) and the user id, or the sha256 of the user id when it is long, with its number `n`
and `site`. `user_counters` holds each site's last number reserved (`_id` is the site).

Exactly one number per user, and one user per number, on both servers:
- a user's number is whatever document won the insert of its `_id` (a unique key): an
  assigner whose insert is refused as a duplicate reads the winner's number;
- a unique index on (`site`, `n`) refuses a second user for a number. MongoDB's `$inc` is
  atomic and never hands out a number twice; FerretDB v1.24.2's is not (it reads, then writes
  the counter back, with no lock between: 4 threads of 100 `$inc` each left 196 distinct
  values), so concurrent assigners there can be given overlapping blocks. The insert of the
  loser's users is then refused on the index, and it reserves a block further on.
Numbers lost to a refused insert stay unused: a gap costs a bitmap nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, cast

from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from app.store import find_by_ids, only_duplicates

USER_NUMBERS = "user_numbers"
USER_COUNTERS = "user_counters"
SEPARATOR = "\x1f"  # refused in site ids by the ingestion schema
# A user id of this many characters or more is keyed by its sha256 (64 hex digits), so a key
# stays short whatever clients send, and no user id kept as it is (shorter) can equal a hash.
HASHED_FROM = 64
# Numbers skipped past a counter found behind the numbers in use (FerretDB's lost `$inc`):
# doubled at each refused block, so an assigner soon passes the highest number given.
FIRST_SKIP = 64


def user_key(site_id: str, user_id: str) -> str:
    """The `_id` of a site's user's number. Distinct user ids of a site get distinct keys,
    but for a sha256 collision of two long ones: for n long ids of a site, the chance of any
    is below n²/2²⁵⁷ (under 10⁻⁵³ for a trillion ids)."""
    if len(user_id) >= HASHED_FROM:
        user_id = hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{site_id}{SEPARATOR}{user_id}"


def ensure_indexes(db: Database[Any]) -> None:
    """The unique index of (site, number), which numbering needs (a worker creates it when it
    starts, as `flask create-indexes` and `flask migrate-store` do); idempotent."""
    db[USER_NUMBERS].create_index([("site", 1), ("n", 1)], unique=True, name="site_n_unique")


def numbers(db: Database[Any], keys: Iterable[str]) -> dict[str, int]:
    """The numbers stored under `keys` (`user_key`), by key."""
    return {key: document["n"] for key, document in find_by_ids(db[USER_NUMBERS], keys, ("n",)).items()}


def reserve(db: Database[Any], site_id: str, count: int) -> int:
    """Reserve `count` numbers of the site; return the first. Two assigners creating a site's
    counter at once: one upsert wins, the other's is refused as a duplicate and tried again."""
    while True:
        try:
            counter = db[USER_COUNTERS].find_one_and_update(
                {"_id": site_id}, {"$inc": {"last": count}}, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            continue
        return int(cast(dict[str, Any], counter)["last"]) - count + 1


def insert(db: Database[Any], site_id: str, numbered: Mapping[str, int]) -> set[str]:
    """Store the keys' numbers; return the keys refused (another assigner stored the key, or
    gave its number to another key)."""
    documents = [{"_id": key, "site": site_id, "n": number} for key, number in numbered.items()]
    try:
        db[USER_NUMBERS].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        if not only_duplicates(error):
            raise
        return {documents[refused["index"]]["_id"] for refused in error.details["writeErrors"]}
    return set()


def assign(db: Database[Any], site_id: str, keys: Iterable[str]) -> dict[str, int]:
    """The numbers of a site's user keys, the missing ones given new numbers."""
    wanted = list(dict.fromkeys(keys))
    found = numbers(db, wanted)
    missing = [key for key in wanted if key not in found]
    skip = 0
    while missing:
        last = reserve(db, site_id, len(missing) + skip) + len(missing) + skip - 1
        # The top of the block: a skip leaves the numbers below it unused.
        numbered = {key: last - len(missing) + 1 + offset for offset, key in enumerate(missing)}
        refused = insert(db, site_id, numbered)
        found.update({key: number for key, number in numbered.items() if key not in refused})
        if refused:
            found.update(numbers(db, refused))
        missing = [key for key in refused if key not in found]
        skip = skip * 2 or FIRST_SKIP
    return found


def raise_counter(db: Database[Any], site_id: str, last: int) -> None:
    """Make the site's counter at least `last` (numbers given before it existed)."""
    db[USER_COUNTERS].update_one({"_id": site_id}, {"$max": {"last": last}}, upsert=True)
