"""The `event_sites` collection: every site that ever stored events, one document each, so
that work over all sites' events (retention) finds those no registry lists (AUTH_MODE=open,
a site removed from the registry)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.database import Database

from app.store import insert_new

EVENT_SITES = "event_sites"

# The sites this process has recorded: a worker writes a site once, not once per batch.
_seen: set[str] = set()


def note_sites(db: Database[Any], site_ids: Iterable[str]) -> None:
    """Record the sites of a stored batch that this process has not recorded yet."""
    new = set(site_ids) - _seen
    if new:
        record_sites(db, new)
        _seen.update(new)


def record_sites(db: Database[Any], site_ids: Iterable[str]) -> None:
    """Record these sites as having stored events (those recorded already stay as they are)."""
    insert_new(db[EVENT_SITES], [{"_id": site_id} for site_id in sorted(site_ids)])


def forget_seen() -> None:
    """Forget which sites this process recorded (a test's fresh store)."""
    _seen.clear()


def known_sites(db: Database[Any]) -> set[str]:
    """Every site recorded as having stored events."""
    return {document["_id"] for document in db[EVENT_SITES].find({}, {"_id": 1})}
