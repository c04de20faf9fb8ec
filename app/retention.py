"""EVENT_RETENTION_DAYS: deleting raw events older than the retention period, and the visits
opened before the same mark, site by site (the registry's sites and those recorded in
`event_sites`), a small batch at a time by `_id` range, so that ingestion's writes go on
between batches. Rollups are kept: `/stats` still
answers for the days whose raw events are gone."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from app.store import event_sites, expired, sites
from app.store import events as event_store
from app.store import visits as visit_store

BATCH_SIZE = 500
# How long one sweep deletes for at most (it deletes one batch at least): a sweep is bounded,
# the next one goes on with the next site.
SWEEP_SECONDS = 30.0


@dataclass
class Sweep:
    """What one sweep did: events and visits deleted, sites looked at, whether it reached the
    end, and if not, the site the next sweep starts with."""

    deleted: int = 0
    visits: int = 0
    sites: int = 0
    finished: bool = True
    next_site: str | None = None


def sweep(
    db: Database[Any],
    now: datetime,
    days: int,
    *,
    batch_size: int = BATCH_SIZE,
    seconds: float = SWEEP_SECONDS,
    pause: Callable[[], bool] = lambda: True,
    clock: Callable[[], float] = time.monotonic,
    first_site: str | None = None,
) -> Sweep:
    """Delete the raw events of every site with a timestamp more than `days` days before
    `now`, then its visits opened before the same mark (none when `days` is 0), in batches
    of `batch_size`, for at most `seconds`, calling `pause` between batches (it waits, and
    answers False to stop the sweep). Sites are taken in order from `first_site` (then from
    the first), so that sweeps cut short take every site in turn, not the first ones only."""
    done = Sweep()
    if days <= 0:
        return done
    before = now - timedelta(days=days)
    # Before any delete: a rebuild must know, whichever process runs it, that those weeks'
    # raw events no longer count them all.
    expired.record_expiry(db, before)
    started = clock()
    batches = 0
    ordered = sorted(set(sites.registered_sites(db)) | event_sites.known_sites(db))
    if first_site is not None:
        ordered = [site for site in ordered if site >= first_site] + [
            site for site in ordered if site < first_site
        ]
    # What a site's expired documents are: its raw events, and its visits opened before the
    # same mark (a visit's `_id` begins with its site and start, as an event's does).
    kinds = (
        (event_store.expired_keys, event_store.delete_events, "deleted"),
        (visit_store.visit_keys_before, visit_store.delete_visits, "visits"),
    )
    for index, site_id in enumerate(ordered):
        done.sites += 1
        for expired_keys, delete, counted in kinds:
            while keys := expired_keys(db, site_id, before, batch_size):
                if batches and (clock() - started >= seconds or not pause()):
                    done.finished = False
                    # This site was given its turn: the next sweep begins with the one after it.
                    done.next_site = ordered[(index + 1) % len(ordered)]
                    return done
                delete(db, keys)
                setattr(done, counted, getattr(done, counted) + len(keys))
                batches += 1
    return done
