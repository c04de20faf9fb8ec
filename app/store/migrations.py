"""The `migrations` collection: the store migrations done, one document per step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

MIGRATIONS = "migrations"


def done_steps(db: Database[Any]) -> set[str]:
    """The names of the steps done on this store."""
    return {document["_id"] for document in db[MIGRATIONS].find({}, {"_id": 1})}


def record_step(db: Database[Any], name: str, summary: str) -> None:
    """Record step `name` as done, with what it did."""
    db[MIGRATIONS].replace_one(
        {"_id": name}, {"_id": name, "summary": summary, "done_at": datetime.now(UTC)}, upsert=True
    )
