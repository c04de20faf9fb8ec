"""Pruning visitors' states (`visit_states`): a state whose latest visit ended long ago is of
no use (an event more than 30 minutes after it opens a new visit anyway, and a cookie-less
visitor's id changes every UTC day), and a state taken up across midnight names the previous
day's id's visit, a link between two days' ids that must not outlive the salts
(docs/visitors.md). The compactor's thread prunes each shard now and then, a bounded batch at
a time, holding the shard's lock: FerretDB deletes by reading then deleting, so a state
written meanwhile by a compactor folding the same visitor would be lost.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.database import Database

from app.rollups.lease import Lease
from app.store import visits as visit_store

# How long after its latest visit ended a state is kept: the salts' own life, and time enough
# for a backlog's events to still join their visits.
KEPT_FOR = timedelta(hours=48)
# States read and pruned in one go.
BATCH_SIZE = 500


def prune_states(
    db: Database[Any], hold: Lease, shard: int, now: datetime, batch_size: int = BATCH_SIZE
) -> int:
    """Delete up to `BATCH_SIZE` states of the shard whose latest visit ended more than
    `KEPT_FOR` before `now`; return how many. A state's `until` may lag its visit's `end` (a
    visit that goes on does not rewrite its state): such a state is kept, its `until` set to
    the truth, so the next batch looks further."""
    before = now - KEPT_FOR
    candidates = visit_store.states_until(db, shard, before, BATCH_SIZE)
    if not candidates:
        return 0
    followed = {visit for state in candidates for visit in visit_store.followed_ids(state)}
    visits = visit_store.find_visits(db, followed)
    gone: list[str] = []
    renewed: dict[str, datetime] = {}
    for state in candidates:
        followed_visits = (visits.get(visit, {}) for visit in visit_store.followed_ids(state))
        latest = max((visit["end"] for visit in followed_visits if "end" in visit), default=None)
        if latest is None or latest < before:
            gone.append(state["_id"])
        else:
            renewed[state["_id"]] = latest

    hold.check()
    if gone:
        visit_store.delete_states(db, gone)
    for key, until in renewed.items():
        hold.check()
        visit_store.set_until(db, key, until)
    return len(gone)
