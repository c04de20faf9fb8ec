"""Recording stored events in their visits' documents, each visit rewritten by the one batch
that holds its lock (app/sessions/locks.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from pymongo.database import Database

from app.sessions import locks
from app.store import visits


def record_visits(
    db: Database[Any], client: redis.Redis, events: Sequence[Mapping[str, Any]], held: locks.Held
) -> None:
    """Add these stored events (documents with a `visit_id`) to their visits' documents; an
    event a visit already holds is not added again. The visits' locks are `held`'s, or taken
    now (an event stored by an earlier delivery may be of a visit this one did not assign);
    the caller gives them back."""
    by_visit: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        if event.get("visit_id"):
            by_visit[event["visit_id"]].append(event)
    if not by_visit:
        return
    locks.take(client, held, by_visit)
    stored = visits.find_visits(db, by_visit)
    visits.save_visits(
        db, (visits.merged(stored.get(visit_id), events) for visit_id, events in by_visit.items())
    )
