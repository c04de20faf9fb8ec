"""The `visits` collection, one document per visit, and `visit_states`, one per visitor: the
visits the compactor folds a shard's events into (app/sessions/fold.py), their only writer.

A visit's `_id` is the key of the event that opened it (site, time, event id), so that a
site's visits of a period are one `_id` range. It holds its site, visitor, first and last
times, entry and exit pages (with their times), page count, event count and duration. A
visitor's state (`_id`: site and identity) names its current visit and a few earlier ones
(`app.sessions.assign`). Both hold the last stream entry folded into them (`through`) and the
compactor's fence (`app/store/fenced.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from app.store import find_by_ids, is_ferretdb
from app.store.events import site_range
from app.store.fenced import nothing, save_fenced

VISITS = "visits"
VISIT_STATES = "visit_states"
PAGE_VIEW = "page_view"
# How far a visit's start may lie before the time its `_id` holds: the compactor keys a visit
# again when its start moves back further (app/sessions/rekey.py), so that a period's visits
# are those opened from its start to this long after its end.
LATE_START = timedelta(hours=1)
# What the compactor keeps for itself, left out of what the reporting reads.
WRITERS_FIELDS = {"through": 0, "fence": 0, "holder": 0}


def find_visits(db: Database[Any], visit_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored visits among `visit_ids`, by id."""
    return find_by_ids(db[VISITS], visit_ids)


def find_states(db: Database[Any], keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored states among those of these visitors' keys, by key."""
    return find_by_ids(db[VISIT_STATES], keys)


def find_visit(db: Database[Any], visit_id: str) -> dict[str, Any] | None:
    """A visit's summary."""
    return db[VISITS].find_one({"_id": visit_id}, projection=WRITERS_FIELDS)


def visits_opened_between(
    db: Database[Any], site_id: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The site's visits whose opening event lies in `start`..`end` (one `_id` range), but
    for the documents left forwarding to a visit keyed again (app/sessions/rekey.py)."""
    query = {"_id": site_range(site_id, start, end), "moved_to": {"$exists": False}}
    return list(db[VISITS].find(query, projection=WRITERS_FIELDS))


def delete_visits(db: Database[Any], visit_ids: Iterable[str]) -> None:
    db[VISITS].delete_many({"_id": {"$in": sorted(visit_ids)}})


def new_visit(visit_id: str, site_id: str, visitor: str) -> dict[str, Any]:
    return {"_id": visit_id, "site_id": site_id, "visitor": visitor, "page_count": 0, "event_count": 0}


def add_event(visit: dict[str, Any], moment: datetime, event_type: str, path: str | None) -> None:
    """Add an event to a visit's summary, in whatever order its events come."""
    visit["start"] = min(visit.get("start", moment), moment)
    visit["end"] = max(visit.get("end", moment), moment)
    visit["duration"] = round((visit["end"] - visit["start"]).total_seconds())
    visit["event_count"] += 1
    if event_type != PAGE_VIEW:
        return
    visit["page_count"] += 1
    if path is None:
        return
    if "entry_at" not in visit or moment < visit["entry_at"]:
        visit["entry_page"], visit["entry_at"] = path, moment
    if "exit_at" not in visit or moment >= visit["exit_at"]:
        visit["exit_page"], visit["exit_at"] = path, moment


def state_document(
    key: str, shard: int, current: str | None, earlier: list[str], until: datetime | None
) -> dict[str, Any]:
    """A visitor's state as stored: its compactor's shard, the ids of its `current` visit
    (absent without one) and of the `earlier` ones it follows, and `until`, the end of its
    latest visit when written (a visit that goes on does not rewrite it: its own `end` is
    the truth). Their times are the visits' own."""
    document: dict[str, Any] = {"_id": key, "shard": shard, "earlier": earlier}
    if current is not None:
        document["current"] = current
    if until is not None:
        document["until"] = until
    return document


def ensure_indexes(db: Database[Any]) -> None:
    """The index of the states by shard and `until`, which pruning reads (app/sessions/prune.py),
    on MongoDB: FerretDB answers no query from it but would maintain it on every write;
    idempotent."""
    if not is_ferretdb(db):
        db[VISIT_STATES].create_index([("shard", 1), ("until", 1)], name="shard_until")


def states_until(db: Database[Any], shard: int, before: datetime, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` states of the shard whose `until` lies before `before`."""
    query = {"shard": shard, "until": {"$lt": before}}
    return list(db[VISIT_STATES].find(query).sort("until", 1).limit(limit))


def delete_states(db: Database[Any], keys: Iterable[str]) -> None:
    db[VISIT_STATES].delete_many({"_id": {"$in": sorted(keys)}})


def set_until(db: Database[Any], key: str, until: datetime) -> None:
    db[VISIT_STATES].update_one({"_id": key}, {"$set": {"until": until}})


def visit_keys_before(db: Database[Any], site_id: str, before: datetime, limit: int) -> list[str]:
    """The keys of up to `limit` of the site's visits opened before `before` (and of the
    forwarding documents keyed so)."""
    found = db[VISITS].find({"_id": site_range(site_id, None, before)}, projection={"_id": 1})
    return [visit["_id"] for visit in found.sort("_id", 1).limit(limit)]


def followed_ids(state: Mapping[str, Any]) -> list[str]:
    """The ids of the visits a stored state follows."""
    return ([state["current"]] if state.get("current") else []) + list(state.get("earlier", []))


def save(
    db: Database[Any],
    collection: str,
    documents: Sequence[dict[str, Any]],
    new: Collection[str],
    before_each_write: Callable[[], None] = nothing,
) -> None:
    """Write visits (VISITS) or visitors' states (VISIT_STATES) whole, fenced: those `new`
    in one insert, the others replaced a few dozen to a command."""
    save_fenced(db[collection], documents, new, before_each_write)
