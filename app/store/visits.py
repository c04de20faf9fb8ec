"""The `visits` collection: one document per visit (app/sessions), by visit id, with its site,
visitor, first and last times, entry and exit pages (with their times), page count, event
count and duration, and the ids of the events it recorded lately (`recent`: event id -> when
recorded), so that a batch delivered again adds nothing twice. Event ids are forgotten after
a while, so that a visit that never pauses does not grow without bound: long after any
delivery of a batch can come back (app/sessions/record.py).

FerretDB's updates are not atomic, so a document is read, worked out here and written whole
by the one batch that holds its lock (app/sessions/locks.py).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReplaceOne
from pymongo.database import Database

from app.store import find_by_ids
from app.visitors import identity

VISITS = "visits"
PAGE_VIEW = "page_view"
# The most event ids a visit remembers: a visit of a flood of events stays small enough to
# rewrite. A delivery that comes back after its visit recorded this many more events could
# add its events twice.
MAX_RECENT = 1000


def find_visits(db: Database[Any], visit_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored visits among `visit_ids`, by id."""
    return find_by_ids(db[VISITS], visit_ids)


def find_visit(db: Database[Any], visit_id: str) -> dict[str, Any] | None:
    """A visit's summary, without its recent event ids."""
    return db[VISITS].find_one({"_id": visit_id}, projection={"recent": 0})


def merged(
    visit: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
    now: datetime,
    remember: timedelta,
) -> dict[str, Any] | None:
    """A visit's document with these stored events of it added, or None when it has recorded
    them all already; the event ids recorded before `now - remember` are forgotten."""
    recent = {key: at for key, at in (visit or {}).get("recent", {}).items() if at >= now - remember}
    new = []
    for event in sorted(events, key=lambda event: event["timestamp"]):
        if event["event_id"] not in recent:
            recent[event["event_id"]] = now
            new.append(event)
    if not new:
        return None
    document = (
        dict(visit)
        if visit
        else {
            "_id": new[0]["visit_id"],
            "site_id": new[0]["site_id"],
            "visitor": identity(new[0]),
            "page_count": 0,
            "event_count": 0,
        }
    )
    for event in new:
        _add(document, event)
    document["duration"] = round((document["end"] - document["start"]).total_seconds())
    document["recent"] = dict(sorted(recent.items(), key=lambda item: item[1])[-MAX_RECENT:])
    return document


def _add(visit: dict[str, Any], event: Mapping[str, Any]) -> None:
    moment, path = event["timestamp"], event.get("path")
    visit["start"] = min(visit.get("start", moment), moment)
    visit["end"] = max(visit.get("end", moment), moment)
    visit["event_count"] += 1
    if event["event_type"] != PAGE_VIEW:
        return
    visit["page_count"] += 1
    if path is None:
        return
    if "entry_at" not in visit or moment < visit["entry_at"]:
        visit["entry_page"], visit["entry_at"] = path, moment
    if "exit_at" not in visit or moment >= visit["exit_at"]:
        visit["exit_page"], visit["exit_at"] = path, moment


def save_visits(db: Database[Any], documents: Iterable[dict[str, Any]], stored: Container[str]) -> None:
    """Write these visits whole (their writer holds their locks): those not `stored` yet in one
    insert, the others each replaced; FerretDB writes a batch of new documents in one step,
    but applies each replacement on its own."""
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for document in documents:
        (changed if document["_id"] in stored else new).append(document)
    if new:
        db[VISITS].insert_many(new, ordered=False)
    if changed:
        db[VISITS].bulk_write([ReplaceOne({"_id": visit["_id"]}, visit) for visit in changed], ordered=False)
