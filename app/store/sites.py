"""The `sites`, `read_keys` and `server_keys` collections: the registered sites with the
domains their pages are served from, whether their servers need a key, the Umami website id
Umami's clients name them by and the hash of their dashboard share token (both optional), the
hashed read keys of each site (or of the operator), and the hashed server keys that servers
send events with. Read keys and server keys live apart, so that neither can ever pass for the other."""

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
SERVER_KEYS = "server_keys"
READ = "read"
SERVER = "server"
KEY_COLLECTIONS = {READ: READ_KEYS, SERVER: SERVER_KEYS}


@dataclass(frozen=True)
class RegisteredSite:
    """What ingestion checks a site's events against: its pages' hosts, whether a server
    needs a server key, and the SHA-256 of each of its server keys."""

    domains: tuple[str, ...]
    require_server_key: bool = False
    server_keys: frozenset[str] = frozenset()
    umami_id: str | None = None


@dataclass(frozen=True)
class StoredKey:
    """A stored key, never its secret: `site_id` is None for an operator key."""

    key_id: str
    site_id: str | None
    created_at: datetime
    kind: str = READ


class UmamiIdTakenError(Exception):
    """The Umami website id names another site already."""


def save_site(
    db: Database[Any],
    site_id: str,
    domains: Sequence[str],
    require_server_key: bool = False,
    umami_id: str | None = None,
) -> bool:
    """Register `site_id` with exactly `domains` and this server-key rule, and `umami_id`
    when one is given (None keeps the site's); return whether the site is new."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {"domains": list(domains), "require_server_key": require_server_key}
    if umami_id is not None:
        _check_umami_id_free(db, site_id, umami_id)
        fields["umami_id"] = umami_id
    result = db[SITES].update_one(
        {"_id": site_id},
        {"$set": {**fields, "updated_at": now}, "$setOnInsert": {"created_at": now}},
        upsert=True,
    )
    return result.upserted_id is not None


def set_umami_id(db: Database[Any], site_id: str, umami_id: str | None) -> bool:
    """Give a registered site this Umami website id, or none; False if it is not registered."""
    if umami_id is not None:
        _check_umami_id_free(db, site_id, umami_id)
    change = {"$set": {"umami_id": umami_id}} if umami_id else {"$unset": {"umami_id": ""}}
    return db[SITES].update_one({"_id": site_id}, change).matched_count == 1


def _check_umami_id_free(db: Database[Any], site_id: str, umami_id: str) -> None:
    # Checked here rather than by a unique index: FerretDB has no partial or sparse index to
    # leave the sites without an id out, and only an operator's command writes this field.
    holder = db[SITES].find_one({"umami_id": umami_id, "_id": {"$ne": site_id}}, projection={"_id": 1})
    if holder is not None:
        raise UmamiIdTakenError(f"Umami website id {umami_id} is site {holder['_id']}'s")


def remove_site(db: Database[Any], site_id: str) -> bool:
    """Forget `site_id` and its keys; return whether it was registered."""
    removed = db[SITES].delete_one({"_id": site_id}).deleted_count
    for collection in KEY_COLLECTIONS.values():
        db[collection].delete_many({"site_id": site_id})
    return bool(removed)


def registered_sites(db: Database[Any]) -> dict[str, RegisteredSite]:
    """Every registered site, by site id: two reads, whatever the number of sites."""
    server_keys: dict[str, set[str]] = {}
    for doc in db[SERVER_KEYS].find(projection={"site_id": 1}):
        server_keys.setdefault(doc["site_id"], set()).add(doc["_id"])
    return {
        doc["_id"]: RegisteredSite(
            tuple(doc.get("domains", ())),
            bool(doc.get("require_server_key", False)),
            frozenset(server_keys.get(doc["_id"], ())),
            doc.get("umami_id"),
        )
        for doc in db[SITES].find().sort("_id", ASCENDING)
    }


def set_share_hash(db: Database[Any], site_id: str, share_hash: str | None) -> bool:
    """Keep the hash of the site's dashboard share token (one at a time), or with None none;
    False if the site is not registered."""
    change = {"$set": {"share_hash": share_hash}} if share_hash else {"$unset": {"share_hash": ""}}
    return db[SITES].update_one({"_id": site_id}, change).matched_count == 1


def share_hash(db: Database[Any], site_id: str) -> str | None:
    """The hash of the site's dashboard share token, if it has one: a read by `_id`."""
    doc = db[SITES].find_one({"_id": site_id}, projection={"share_hash": 1})
    return doc.get("share_hash") if doc else None


def is_registered(db: Database[Any], site_id: str) -> bool:
    return db[SITES].find_one({"_id": site_id}, projection={"_id": 1}) is not None


def save_key(db: Database[Any], key_id: str, site_id: str | None, key_hash: str, kind: str = READ) -> bool:
    """Store a key of `kind` by its hash; False if that id is taken by a key of either kind
    (the caller draws another)."""
    if any(
        db[collection].find_one({"key_id": key_id}, projection={"_id": 1})
        for collection in KEY_COLLECTIONS.values()
    ):
        return False
    try:
        # The hash is the `_id`: verifying a key is a read by `_id`, the fast read on FerretDB too.
        db[KEY_COLLECTIONS[kind]].insert_one(
            {"_id": key_hash, "key_id": key_id, "site_id": site_id, "created_at": datetime.now(UTC)}
        )
    except DuplicateKeyError:
        return False
    return True


def key_by_hash(db: Database[Any], key_hash: str) -> StoredKey | None:
    """The read key whose hash is `key_hash` (a server key never is one)."""
    doc = db[READ_KEYS].find_one({"_id": key_hash})
    return _stored_key(doc, READ) if doc else None


def keys(db: Database[Any], site_id: str | None = None) -> list[StoredKey]:
    """The keys of both kinds of `site_id`, or every key, oldest first."""
    return sorted(
        (key for kind in KEY_COLLECTIONS for key in _keys(db, kind, site_id)), key=lambda key: key.created_at
    )


def revoke_key(db: Database[Any], key_id: str) -> bool:
    """Delete the key `key_id`, of either kind; return whether there was one."""
    return any(
        db[collection].delete_one({"key_id": key_id}).deleted_count for collection in KEY_COLLECTIONS.values()
    )


def _keys(db: Database[Any], kind: str, site_id: str | None) -> list[StoredKey]:
    query = {} if site_id is None else {"site_id": site_id}
    return [
        _stored_key(doc, kind) for doc in db[KEY_COLLECTIONS[kind]].find(query).sort("created_at", ASCENDING)
    ]


def _stored_key(doc: dict[str, Any], kind: str) -> StoredKey:
    return StoredKey(key_id=doc["key_id"], site_id=doc["site_id"], created_at=doc["created_at"], kind=kind)
