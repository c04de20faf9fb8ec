"""Visits through the real pipeline: events posted to ingestion, visits assigned by the real
worker in Redis and recorded in MongoDB."""

from __future__ import annotations

import requests

from tests.integration.client import TIMEOUT
from tools.factories import make_event, new_site_id
from tools.processes import wait_until


def test_the_worker_assigns_and_records_each_visitors_visits(pipeline, db):
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
    stored = {
        (event["user_id"], event["path"], event["timestamp"].hour): event
        for event in db["events"].find({"site_id": site})
    }
    morning = stored[("alice", "/", 10)]["visit_id"]
    assert (
        stored[("alice", "/pricing", 10)]["visit_id"]
        == stored[("alice", "/signup", 10)]["visit_id"]
        == morning
    )
    assert (
        len({morning, stored[("alice", "/", 12)]["visit_id"], stored[("bob", "/blog", 10)]["visit_id"]}) == 3
    )
    wait_until(lambda: db["visits"].count_documents({"site_id": site}) == 3, 30, "the visits")
    summaries = {
        (visit["visitor"], visit["entry_page"], visit["exit_page"], visit["page_count"], visit["duration"])
        for visit in db["visits"].find({"site_id": site}, {"recent": 0})
    }
    assert summaries == {
        ("alice", "/", "/signup", 3, 2400),
        ("alice", "/", "/", 1, 0),
        ("bob", "/blog", "/blog", 1, 0),
    }
