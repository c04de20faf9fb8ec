"""The `sites` and `read_keys` collections: the registered sites with the domains their pages
are served from, and the hashed read keys of each site (or of the operator)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

SITES = "sites"
READ_KEYS = "read_keys"


@dataclass(frozen=True)
class ReadKey:
    """A stored key, never its secret: `site_id` is None for an operator key."""

    key_id: str
    site_id: str | None
    created_at: datetime


def save_site(db: Database[Any], site_id: str, domains: Sequence[str]) -> bool:
    """Register `site_id` with exactly `domains`; return whether the site is new."""
    now = datetime.now(UTC)
    result = db[SITES].update_one(
        {"_id": site_id},
        {"$set": {"domains": list(domains), "updated_at": now}, "$setOnInsert": {"created_at": now}},
        upsert=True,
    )
    return result.upserted_id is not None


def remove_site(db: Database[Any], site_id: str) -> bool:
    """Forget `site_id` and its read keys; return whether it was registered."""
    removed = db[SITES].delete_one({"_id": site_id}).deleted_count
    db[READ_KEYS].delete_many({"site_id": site_id})
    return bool(removed)


def registered_sites(db: Database[Any]) -> dict[str, tuple[str, ...]]:
    """Every registered site with its domains, by site id."""
    return {doc["_id"]: tuple(doc.get("domains", ())) for doc in db[SITES].find().sort("_id", ASCENDING)}


def is_registered(db: Database[Any], site_id: str) -> bool:
    return db[SITES].find_one({"_id": site_id}, projection={"_id": 1}) is not None


def save_key(db: Database[Any], key_id: str, site_id: str | None, key_hash: str) -> bool:
    """Store a read key by its hash; False if that id is taken (the caller draws another)."""
    if db[READ_KEYS].find_one({"key_id": key_id}, projection={"_id": 1}) is not None:
        return False
    try:
        # The hash is the `_id`: verifying a key is a read by `_id`, the fast read on FerretDB too.
        db[READ_KEYS].insert_one(
            {"_id": key_hash, "key_id": key_id, "site_id": site_id, "created_at": datetime.now(UTC)}
        )
    except DuplicateKeyError:
        return False
    return True


def key_by_hash(db: Database[Any], key_hash: str) -> ReadKey | None:
    doc = db[READ_KEYS].find_one({"_id": key_hash})
    return _read_key(doc) if doc else None


def read_keys(db: Database[Any], site_id: str | None = None) -> list[ReadKey]:
    """The keys of `site_id`, or every key, oldest first."""
    query = {} if site_id is None else {"site_id": site_id}
    return [_read_key(doc) for doc in db[READ_KEYS].find(query).sort("created_at", ASCENDING)]


def revoke_key(db: Database[Any], key_id: str) -> bool:
    """Delete the key `key_id`; return whether there was one."""
    return bool(db[READ_KEYS].delete_one({"key_id": key_id}).deleted_count)


def _read_key(doc: dict[str, Any]) -> ReadKey:
    return ReadKey(key_id=doc["key_id"], site_id=doc["site_id"], created_at=doc["created_at"])
