"""Visits through the real pipeline: events posted to ingestion, stored by the real worker,
folded into their visits by the worker's compactor, and broken down by the reporting
service."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
import requests

from app.rollups import compactor
from app.store.user_numbers import user_key
from tests.integration.client import TIMEOUT
from tools.factories import make_event, new_site_id
from tools.processes import wait_until


def test_the_compactor_folds_each_visitors_visits(pipeline, db, redis_url):
    site = new_site_id()
    rows = [
        ("alice", "/", "10:00"),
        ("alice", "/pricing", "10:12"),
        ("bob", "/blog", "10:13"),
        ("alice", "/signup", "10:40"),
        ("alice", "/", "12:00"),  # 80 minutes later: a visit of its own
    ]
    events = [
        make_event(site_id=site, user_id=user, path=path, timestamp=f"2025-11-15T{clock}:00Z")
        for user, path, clock in rows
    ]

    # Two batches, the second sent once the first is stored: in the order they happened (out
    # of order, a visit may be split: docs/sessions.md).
    def stored_count() -> int:
        return db["events"].count_documents({"site_id": site})

    for part, expected in ((events[:3], 3), (events[3:], 5)):
        assert requests.post(f"{pipeline['ingestion']}/events", json=part, timeout=TIMEOUT).ok
        wait_until(lambda: stored_count() == expected, 30, f"{expected} events")  # noqa: B023
    visits = {
        ("alice", "/", "/signup", 3, 2400),
        ("alice", "/", "/", 1, 0),
        ("bob", "/blog", "/blog", 1, 0),
    }

    def summaries() -> set[tuple[str, ...]]:
        fields = ("visitor", "entry_page", "exit_page", "page_count", "duration")
        return {tuple(visit[name] for name in fields) for visit in db["visits"].find({"site_id": site})}

    wait_until(lambda: summaries() == visits, 30, "the visits")
    answer = requests.get(
        f"{pipeline['reporting']}/stats/breakdown",
        params={"site_id": site, "date": "2025-11-15", "by": "entry_page"},
        timeout=TIMEOUT,
    ).json()
    assert answer["results"] == [
        {"value": "/", "views": 2, "unique_users": 1},
        {"value": "/blog", "views": 1, "unique_users": 1},
    ]
    # No state per visitor in Redis (issue #25's bound): only the daily salts' keys.
    assert not redis.Redis.from_url(redis_url).keys("analytics:visit:*")


def test_a_visit_whose_start_moves_back_is_keyed_again_and_its_state_pruned(pipeline, db, redis_url):
    """On the real servers: a visit's events arrive latest first, each once the one before is
    folded, so its start moves 75 minutes back: it is keyed again by its first event, and its
    day's breakdown counts it once. Its visitor's state, its visit long over, is then pruned."""
    site = new_site_id()
    clocks = ("11:30", "11:05", "10:40", "10:15")

    def folded() -> int:
        return sum(visit.get("event_count", 0) for visit in db["visits"].find({"site_id": site}))

    for count, clock in enumerate(clocks, 1):
        event = make_event(
            site_id=site, user_id="alice", path=f"/{clock}", timestamp=f"2025-11-15T{clock}:00Z"
        )
        assert requests.post(f"{pipeline['ingestion']}/events", json=[event], timeout=TIMEOUT).ok
        wait_until(lambda: folded() == count, 30, f"{count} events folded")  # noqa: B023
    wait_until(lambda: db["visits"].count_documents({"site_id": site}) == 1, 30, "the forward deleted")
    [visit] = db["visits"].find({"site_id": site})
    assert visit["_id"].split("\x1f")[1].startswith("2025-11-15T10:15")
    answer = requests.get(
        f"{pipeline['reporting']}/stats/breakdown",
        params={"site_id": site, "date": "2025-11-15", "by": "entry_page"},
        timeout=TIMEOUT,
    ).json()
    assert answer["results"] == [{"value": "/10:15", "views": 1, "unique_users": 1}]

    client = redis.Redis.from_url(redis_url)
    now = datetime.now(UTC)
    wait_until(
        lambda: (
            compactor.prune_visit_states(db, client, now) >= 0
            and db["visit_states"].find_one({"_id": user_key(site, "alice")}) is None
        ),
        30,
        "the state pruned",
    )
