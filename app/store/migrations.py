"""The `migrations` collection: the store migrations done, one document per step; and
`migration_parts`: the parts of a step under way done so far, so that it resumes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from app.store import find_by_ids

MIGRATIONS = "migrations"


def done_steps(db: Database[Any]) -> set[str]:
    """The names of the steps done on this store."""
    return {document["_id"] for document in db[MIGRATIONS].find({}, {"_id": 1})}


def hold_nothing(db: Database[Any], collections: Iterable[str]) -> bool:
    """Whether none of `collections` holds a document."""
    return all(db[name].find_one({}, {"_id": 1}) is None for name in collections)


def is_done(db: Database[Any], name: str) -> bool:
    return db[MIGRATIONS].find_one({"_id": name}, {"_id": 1}) is not None


def record_step(db: Database[Any], name: str, summary: str) -> None:
    """Record step `name` as done, with what it did."""
    db[MIGRATIONS].replace_one(
        {"_id": name}, {"_id": name, "summary": summary, "done_at": datetime.now(UTC)}, upsert=True
    )


# What a step cut short had done: one document per part done (`<step>|<part>`), deleted once
# the step is.
PARTS = "migration_parts"


def done_parts(db: Database[Any], step: str, parts: Iterable[str]) -> set[str]:
    """Those of `parts` that step `step` has done."""
    found = find_by_ids(db[PARTS], (f"{step}|{part}" for part in parts), fields=("_id",))
    return {key.removeprefix(f"{step}|") for key in found}


def record_part(db: Database[Any], step: str, part: str) -> None:
    db[PARTS].replace_one({"_id": f"{step}|{part}"}, {"_id": f"{step}|{part}", "step": step}, upsert=True)


def forget_parts(db: Database[Any], step: str) -> None:
    db[PARTS].delete_many({"step": step})
