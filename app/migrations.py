"""Store migrations, in order (`flask migrate-store`): each step is idempotent and resumable,
safe to run while workers write, and recorded in the `migrations` collection once done, so
that a store runs each once. A new step goes at the end of STEPS."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from pymongo.database import Database

from app.rollups import migrations as rollup_migrations
from app.store import dead_letters
from app.store import events as event_store
from app.store import migrations as migration_store
from app.store import rollups as rollup_store


@dataclass(frozen=True)
class Step:
    """One migration: its name (recorded once done), and what runs it, saying what it did."""

    name: str
    run: Callable[[Database[Any], redis.Redis], str]
    # Run by every worker when it starts, before it compacts: what a compactor of this release
    # cannot work without.
    before_compacting: bool = False


def _in_batches(
    db: Database[Any],
    documents: Iterator[dict[str, Any]],
    rekey: Callable[[Database[Any], list[dict[str, Any]]], int],
    size: int,
) -> int:
    moved = 0
    while batch := list(itertools.islice(documents, size)):
        moved += rekey(db, batch)
    return moved


def key_events_by_site_and_time(db: Database[Any], _client: redis.Redis) -> str:
    """Events and dead letters keyed by bare event id (before issue #26) keyed by site, time
    and event id; the unique index on site and event id first, so that a retry a worker
    stores meanwhile is refused."""
    event_store.ensure_indexes(db)
    event_store.restore_moving_events(db)
    events = _in_batches(
        db, event_store.previous_layout_events(db), event_store.rekey_events, event_store.MIGRATION_BATCH
    )
    letters = _in_batches(
        db, dead_letters.previous_layout_letters(db), dead_letters.rekey_letters, event_store.MIGRATION_BATCH
    )
    return f"{events} events and {letters} dead letters keyed by site and time"


STEPS = [
    Step(event_store.LAYOUT_STEP, key_events_by_site_and_time),
    Step("user-numbers-to-mongodb", rollup_migrations.move_user_numbers, before_compacting=True),
    Step(rollup_migrations.QUARTERS_STEP, rollup_migrations.build_quarter_rollups),
]


def pending(db: Database[Any]) -> list[Step]:
    """The steps not yet done on this store, in order."""
    done = migration_store.done_steps(db)
    return [step for step in STEPS if step.name not in done]


def adopt_new_store(db: Database[Any]) -> bool:
    """Record every step done on a store that holds nothing yet, and say whether it did: it has
    nothing to migrate, and a step left pending would keep readers on the paths meant for a
    store an earlier release wrote (lookups in the previous layout, raw reads for zones whose
    days start on a quarter hour)."""
    written = (event_store.EVENTS, dead_letters.DEAD_EVENTS, rollup_store.ROLLUPS)
    if migration_store.done_steps(db) or not migration_store.hold_nothing(db, written):
        return False
    record_all(db, "a new store: nothing to migrate")
    return True


def record_all(db: Database[Any], summary: str) -> None:
    """Record every step done: the store was written by this release."""
    for step in STEPS:
        migration_store.record_step(db, step.name, summary)


def migrate(db: Database[Any], client: redis.Redis, before_compacting: bool = False) -> list[tuple[str, str]]:
    """Run the pending steps in order (only those needed `before_compacting`, if asked);
    the name of each and what it did."""
    ran = []
    for step in pending(db):
        if before_compacting and not step.before_compacting:
            continue
        summary = step.run(db, client)
        migration_store.record_step(db, step.name, summary)
        ran.append((step.name, summary))
    return ran
