"""EVENT_RETENTION_DAYS: deleting raw events older than the retention period, site by site
(the registry's sites and those recorded in `event_sites`), a small batch at a time by `_id`
range, so that ingestion's writes go on between batches. Rollups are kept: `/stats` still
answers for the days whose raw events are gone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from app.store import event_sites, expired, sites
from app.store import events as event_store

BATCH_SIZE = 500
# Batches one sweep deletes at most: a sweep is bounded, the next one goes on.
MAX_BATCHES = 20


@dataclass
class Sweep:
    """What one sweep did: events deleted, sites looked at, and whether it reached the end."""

    deleted: int = 0
    sites: int = 0
    finished: bool = True


def sweep(
    db: Database[Any],
    now: datetime,
    days: int,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    pause: Callable[[], bool] = lambda: True,
) -> Sweep:
    """Delete the raw events of every site with a timestamp more than `days` days before
    `now` (none when `days` is 0), at most `max_batches` batches of `batch_size`, calling
    `pause` between batches (it waits, and answers False to stop the sweep)."""
    done = Sweep()
    if days <= 0:
        return done
    before = now - timedelta(days=days)
    # Before any delete: a rebuild must know, whichever process runs it, that those weeks'
    # raw events no longer count them all.
    expired.record_expiry(db, before)
    batches = 0
    for site_id in sorted(set(sites.registered_sites(db)) | event_sites.known_sites(db)):
        done.sites += 1
        while keys := event_store.expired_keys(db, site_id, before, batch_size):
            if batches == max_batches or (batches and not pause()):
                done.finished = False
                return done
            event_store.delete_events(db, keys)
            done.deleted += len(keys)
            batches += 1
    return done
