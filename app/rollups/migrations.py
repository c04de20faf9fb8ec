"""The rollups' migration steps (`app/migrations.py`, `flask migrate-store`).

- `move_user_numbers`: users' numbers from the Redis hashes of earlier releases into MongoDB
  (`app/store/user_numbers.py`), a page of a site's hash at a time, the counter set to the
  last number given, then the hash deleted. A hash is deleted only once its numbers are all
  stored, and storing one again is refused as a duplicate, so a step cut short is run again.
  It must run before a compactor of this release numbers a user, or that user would get a
  second number: the workers run it when they start, before compacting.
- `build_quarter_rollups`: the quarter-hour rollups of what compactors of earlier releases
  added (their deltas were hourly), rebuilt from the raw events a site-week at a time
  (`compactor.rebuild`, exact however it is interleaved with compaction). Each week rebuilt
  is recorded (`migration_store.record_part`), so a step cut short resumes where it stopped.
  Until a site-week is rebuilt, a question about a day that starts on a half or quarter hour
  misses the events of its edge quarters; whole UTC hours, days and weeks are exact throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any, cast

import redis
from pymongo.database import Database

from app.rollups import compactor, user_ids
from app.store import migrations as migration_store
from app.store import rollups as rollup_store
from app.store import user_numbers

PAGE = 1000  # a Redis hash's fields read, and user numbers inserted, at a time
QUARTERS_STEP = "quarter-rollups"


def quarter_rollups_built(db: Database[Any]) -> bool:
    """Whether every week rolled up has its quarter-hour rollups: only then can they answer a
    zone whose days start on a quarter hour (Asia/Kolkata) without missing the events an
    earlier release rolled up."""
    return migration_store.is_done(db, QUARTERS_STEP)


def move_user_numbers(db: Database[Any], client: redis.Redis) -> str:
    """Move every site's users' numbers from Redis to MongoDB, then delete them from Redis."""
    user_numbers.ensure_indexes(db)
    lasts = _last_numbers(client)
    sites = users = renumbered = 0
    for key in _user_hashes(client):
        site_id = key.removeprefix(f"{user_ids.PREFIX}:")
        moved, kept = _move_site(db, client, key, site_id, lasts.get(site_id, 0))
        client.delete(key)
        sites, users, renumbered = sites + 1, users + moved, renumbered + kept
    client.delete(user_ids.LAST_IDS_KEY)
    summary = f"{users} users' numbers of {sites} sites moved from Redis to MongoDB"
    if renumbered:
        summary += (
            f"; {renumbered} already numbered otherwise in MongoDB kept its number "
            "(rebuild those sites' rollups)"
        )
    return summary


def _last_numbers(client: redis.Redis) -> dict[str, int]:
    """Each site's last number given. The oldest releases kept them at LEGACY_LAST_IDS_KEY,
    which the first assignment after an upgrade renamed: while LAST_IDS_KEY exists, that key
    is the users' hash of a site named `next`."""
    key = user_ids.LAST_IDS_KEY
    if not client.exists(key) and client.exists(user_ids.LEGACY_LAST_IDS_KEY):
        client.rename(user_ids.LEGACY_LAST_IDS_KEY, key)
    lasts = cast(dict[bytes, bytes], client.hgetall(key))
    return {site.decode(): int(last) for site, last in lasts.items()}


def _user_hashes(client: redis.Redis) -> Iterator[str]:
    for key in client.scan_iter(match=f"{user_ids.PREFIX}:*", count=PAGE):
        yield key.decode() if isinstance(key, bytes) else str(key)


def _move_site(db: Database[Any], client: redis.Redis, key: str, site_id: str, last: int) -> tuple[int, int]:
    """Store a site's users' numbers and set its counter past them; how many users, and how
    many of them MongoDB had numbered otherwise already (a worker of this release started
    before the move, or a stopped run's key given another number): those keep MongoDB's
    number, so rollups counted with Redis's count them as other users."""
    moved = kept = 0
    cursor = 0
    while True:
        cursor, page = cast(tuple[int, dict[bytes, bytes]], client.hscan(key, cursor, count=PAGE))
        numbered = {
            user_numbers.user_key(site_id, user.decode("utf-8", "surrogatepass")): int(number)
            for user, number in page.items()
        }
        if numbered:
            refused = user_numbers.insert(db, site_id, numbered)
            stored = user_numbers.numbers(db, refused)
            kept += sum(1 for user in refused if stored.get(user) != numbered[user])
            last = max(last, *numbered.values())
            moved += len(numbered)
        if cursor == 0:
            break
    user_numbers.raise_counter(db, site_id, last)
    return moved, kept


def build_quarter_rollups(db: Database[Any], client: redis.Redis) -> str:
    """Rebuild every site-week with a rollup from its raw events, quarters included, skipping
    those a cut-short run rebuilt already."""
    weeks = {
        f"{site_id}|{week.astimezone(UTC).date().isoformat()}": (site_id, week)
        for site_id, week in rollup_store.weeks_with_rollups(db)
    }
    done = migration_store.done_parts(db, QUARTERS_STEP, weeks)
    events = rebuilt = 0
    for part, (site_id, week) in weeks.items():
        if part in done:
            continue
        day = week.astimezone(UTC).date()
        events += compactor.rebuild(db, client, site_id, day, day)
        migration_store.record_part(db, QUARTERS_STEP, part)
        rebuilt += 1
    migration_store.forget_parts(db, QUARTERS_STEP)
    return f"{rebuilt} site-weeks rebuilt with their quarter hours ({events} events)"
