"""Small integer ids for each site's users, so rollups keep distinct users as bitmaps.

A rollup that kept user ids as strings made a 30-day question merge every user's string
(docs/decisions/rollup-users-as-strings.md); as bitmaps it is a few `|` of ints. Ids are
assigned once, in MongoDB beside the rollups (`app/store/user_numbers.py`), exactly one per
(site, user) however many compactors ask at once. They lived in a Redis hash per site until
this release, which grew with every user a site ever had in the queue's Redis
(docs/decisions/user-numbers-in-mongodb.md); `flask migrate-store` moves them
(`app/migrations.py`). Were the numbers ever lost, every site's rollups must be rebuilt
(`make rebuild-rollups`): new ids would not match the bits already stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.database import Database

from app.store import user_numbers
from app.visitors import identity

# Where earlier releases kept the ids: PREFIX:<site id>, a hash user -> id, and the last id
# given of each site, in a hash. Only the migration reads them any more.
PREFIX = "analytics:user-ids"
LAST_IDS_KEY = "analytics:user-id-last"
LEGACY_LAST_IDS_KEY = f"{PREFIX}:next"


# Users' ids a process remembers, per database: an id never changes once given, so a
# compactor looks up in MongoDB only the users it has not met lately (FerretDB serves a
# lookup of many `_id`s as one lookup each). Forgotten all at once when full: about 15 MB.
REMEMBERED = 100_000


def ids_by_site(db: Database[Any], users_by_site: Mapping[str, Iterable[str]]) -> dict[str, dict[str, int]]:
    """Each site's users' ids (1, 2, ...), giving new users new ids."""
    remembered = _remembered(db)
    answers: dict[str, dict[str, int]] = {}
    for site_id, users in users_by_site.items():
        keys = {user_numbers.user_key(site_id, user): user for user in users}
        if keys:
            known = {key: remembered[key] for key in keys if key in remembered}
            unknown = sorted(key for key in keys if key not in known)
            numbers = user_numbers.assign(db, site_id, unknown) if unknown else {}
            if len(remembered) + len(numbers) > REMEMBERED:
                remembered.clear()
            remembered.update(numbers)
            known.update(numbers)
            answers[site_id] = {user: known[key] for key, user in keys.items()}
    return answers


def _remembered(db: Database[Any]) -> dict[str, int]:
    """The ids this process remembers of `db`'s users, kept with its client: they go with it."""
    by_database: dict[str, dict[str, int]] = vars(db.client).setdefault("_analytics_user_ids", {})
    return by_database.setdefault(db.name, {})


def numbered(db: Database[Any], events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The events with `user_id` set to the id on the event's site of whom the event counts
    as (`app.visitors.identity`); an event that counts as no one is left alone."""
    named = [(event, identity(event)) for event in events]
    users_by_site: dict[str, set[str]] = {}
    for event, user in named:
        if user:
            users_by_site.setdefault(event["site_id"], set()).add(user)
    ids = ids_by_site(db, users_by_site)
    return [_with_number(event, ids[event["site_id"]][user] if user else None) for event, user in named]


def numbered_locally(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The events numbered as `numbered` does, for this list alone: enough to count distinct
    users."""
    ids: dict[str, int] = {}
    named = [(event, identity(event)) for event in events]
    return [
        _with_number(event, ids.setdefault(user, len(ids) + 1) if user else None) for event, user in named
    ]


def _with_number(event: Mapping[str, Any], number: int | None) -> dict[str, Any]:
    return dict(event) if number is None else {**event, "user_id": number}
