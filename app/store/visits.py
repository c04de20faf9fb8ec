"""The `visits` collection: one document per visit (app/sessions), by visit id, with its site,
visitor, first and last times, entry and exit pages, page count, duration, and its events by
event id, so that writing an event again changes nothing.

FerretDB's updates are not atomic, so the documents are written whole by a worker that holds
the visits' locks (app/sessions/record.py): read, merged here, written back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import ReplaceOne
from pymongo.database import Database

from app.store import find_by_ids
from app.visitors import identity

VISITS = "visits"
PAGE_VIEW = "page_view"


def find_visits(db: Database[Any], visit_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored visits among `visit_ids`, by id."""
    return find_by_ids(db[VISITS], visit_ids)


def find_visit(db: Database[Any], visit_id: str) -> dict[str, Any] | None:
    """A visit's summary, without its events."""
    return db[VISITS].find_one({"_id": visit_id}, projection={"events": 0})


def merged(visit: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A visit's document with these stored events of it added (those it holds stay as they
    are), and its summary worked out again from all its events."""
    first = events[0]
    known = dict(visit["events"]) if visit else {}
    for event in events:
        known.setdefault(
            event["event_id"],
            {"t": event["timestamp"], "path": event.get("path"), "view": event["event_type"] == PAGE_VIEW},
        )
    in_order = sorted(known.values(), key=lambda entry: entry["t"])
    pages = [entry["path"] for entry in in_order if entry["view"] and entry["path"] is not None]
    start, end = in_order[0]["t"], in_order[-1]["t"]
    document = {
        "_id": first["visit_id"],
        "site_id": first["site_id"],
        "visitor": visit["visitor"] if visit else identity(first),
        "start": start,
        "end": end,
        "entry_page": pages[0] if pages else None,
        "exit_page": pages[-1] if pages else None,
        "page_count": sum(1 for entry in in_order if entry["view"]),
        "event_count": len(in_order),
        "duration": round((end - start).total_seconds()),
        "events": known,
    }
    return {key: value for key, value in document.items() if value is not None}


def save_visits(db: Database[Any], documents: Iterable[dict[str, Any]]) -> None:
    """Write these visits whole (their writer holds their locks)."""
    writes = [ReplaceOne({"_id": document["_id"]}, document, upsert=True) for document in documents]
    if writes:
        db[VISITS].bulk_write(writes, ordered=False)
