"""Store migrations, in order (`flask migrate-store`): each step is idempotent and resumable,
and recorded in the `migrations` collection once done, so that a store runs each once. A new
step goes at the end of STEPS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from pymongo.database import Database

from app.rollups import migrations as rollup_migrations
from app.store import migrations as migration_store


@dataclass(frozen=True)
class Step:
    """One migration: its name (recorded once done), and what runs it, saying what it did."""

    name: str
    run: Callable[[Database[Any], redis.Redis], str]
    # Run by every worker when it starts, before it compacts: what a compactor of this release
    # cannot work without.
    before_compacting: bool = False


STEPS = [
    Step("user-numbers-to-mongodb", rollup_migrations.move_user_numbers, before_compacting=True),
    Step(rollup_migrations.QUARTERS_STEP, rollup_migrations.build_quarter_rollups),
]


def pending(db: Database[Any]) -> list[Step]:
    """The steps not yet done on this store, in order."""
    done = migration_store.done_steps(db)
    return [step for step in STEPS if step.name not in done]


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
