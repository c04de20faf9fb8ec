"""The `expired` collection: how far retention has deleted raw events ("every event before
this time may be gone"), recorded before a sweep deletes any, in the store, so that every
process (whatever its own EVENT_RETENTION_DAYS) knows which weeks a rebuild from raw events
would count short."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

EXPIRED = "expired"
_ID = "raw-events"


def record_expiry(db: Database[Any], before: datetime) -> None:
    """Record that raw events before `before` may be deleted from now on (the mark only
    moves forward; one sweeper at a time writes it)."""
    current = expired_before(db)
    if current is None or before > current:
        db[EXPIRED].replace_one({"_id": _ID}, {"_id": _ID, "before": before}, upsert=True)


def expired_before(db: Database[Any]) -> datetime | None:
    """The time before which raw events may be gone, if retention ever deleted any."""
    document = db[EXPIRED].find_one({"_id": _ID})
    if document is None:
        return None
    moment: datetime = document["before"]
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # (a naive BSON date is UTC)
