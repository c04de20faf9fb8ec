"""Recording stored events in their visits' documents, each visit rewritten by the one batch
that holds its lock (app/sessions/locks.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from pymongo.database import Database

from app.sessions import locks
from app.store import visits

# How long a visit remembers the ids of the events it recorded, so that a batch delivered
# again adds nothing twice: far longer than the ledger remembers a settled batch (a delivery
# comes back within that), and short enough that a visit that never pauses stays small.
REMEMBER_EVENT_IDS = timedelta(hours=24)


def record_visits(
    db: Database[Any], client: redis.Redis, events: Sequence[Mapping[str, Any]], held: locks.Held
) -> None:
    """Add these stored events (documents with a `visit_id`) to their visits' documents; an
    event a visit recorded lately (REMEMBER_EVENT_IDS) is not added again. The visits' locks
    are `held`'s, or taken now (an event stored by an earlier delivery may be of a visit this
    one did not assign); the caller gives them back."""
    by_visit: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        if event.get("visit_id"):
            by_visit[event["visit_id"]].append(event)
    if not by_visit:
        return
    locks.take(client, held, by_visit)
    stored = visits.find_visits(db, by_visit)
    now = datetime.now(UTC)
    documents = (
        visits.merged(stored.get(visit_id), events, now, REMEMBER_EVENT_IDS)
        for visit_id, events in by_visit.items()
    )
    visits.save_visits(db, (document for document in documents if document is not None), stored)
