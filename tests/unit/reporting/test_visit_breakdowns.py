"""`/stats/breakdown?by=entry_page|exit_page`: the period's visits by their first or last page,
from the `visits` collection, and their raw cross-check `/stats/aggregated?by=`."""

import pytest

from tools.factories import make_event

SITE = "site-abc-123"
DAY = f"site_id={SITE}&date=2025-11-15"


def view(user: str, path: str | None, clock: str, day: str = "2025-11-15", **fields):
    return make_event(site_id=SITE, user_id=user, path=path, timestamp=f"{day}T{clock}:00Z", **fields)


TRAFFIC = [
    view("alice", "/", "10:00"),
    view("alice", "/pricing", "10:10"),
    view("alice", "/blog", "12:00"),  # a visit of its own, entered and left on /blog
    view("bob", "/", "10:05"),
    view("bob", "/signup", "10:20"),
    view("bob", None, "10:25", event_type="signup"),  # no page: the exit stays /signup
    view("carol", "/blog", "23:50", day="2025-11-14"),  # the day before: not in the period
]


@pytest.fixture
def traffic(store):
    store(TRAFFIC[:3])
    store(TRAFFIC[3:])


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        (
            "entry_page",
            [
                {"value": "/", "views": 2, "unique_users": 2},
                {"value": "/blog", "views": 1, "unique_users": 1},
            ],
        ),
        (
            "exit_page",
            [
                {"value": "/blog", "views": 1, "unique_users": 1},
                {"value": "/pricing", "views": 1, "unique_users": 1},
                {"value": "/signup", "views": 1, "unique_users": 1},
            ],
        ),
    ],
)
def test_a_breakdown_by_entry_or_exit_page_counts_the_visits_that_began_in_the_period(
    reporting, traffic, by, expected
):
    answer = reporting.get(f"/stats/breakdown?{DAY}&by={by}").get_json()
    assert (answer["total"], answer["results"]) == (len(expected), expected)
    aggregated = reporting.get(f"/stats/aggregated?{DAY}&by={by}").get_json()
    assert aggregated["results"] == expected


def test_a_visit_is_counted_in_the_period_it_began_in(reporting, store):
    store([view("dave", "/late", "23:50", day="2025-11-14"), view("dave", "/after", "00:10")])
    previous = reporting.get(f"/stats/breakdown?site_id={SITE}&date=2025-11-14&by=exit_page").get_json()
    assert previous["results"] == [{"value": "/after", "views": 1, "unique_users": 1}]
    assert reporting.get(f"/stats/breakdown?{DAY}&by=entry_page").get_json()["results"] == []
    # The raw cross-check reads the period's events alone: to it, the visit began at 00:10.
    aggregated = reporting.get(f"/stats/aggregated?{DAY}&by=entry_page").get_json()
    assert aggregated["results"] == [{"value": "/after", "views": 1, "unique_users": 1}]


def test_a_breakdown_by_visits_is_paginated(reporting, traffic):
    answer = reporting.get(f"/stats/breakdown?{DAY}&by=exit_page&limit=1&offset=1").get_json()
    assert (answer["total"], answer["results"]) == (3, [{"value": "/pricing", "views": 1, "unique_users": 1}])


def test_a_visit_whose_start_moved_back_after_it_opened_counts_where_it_began(reporting, store):
    """Its first events arrived after a later one opened it: keyed by the later event's time,
    it is still found in the period of its start."""
    store([view("erin", "/docs", "00:20", day="2025-11-16")])
    store([view("erin", "/", "23:55")])
    answer = reporting.get(f"/stats/breakdown?{DAY}&by=entry_page").get_json()
    assert answer["results"] == [{"value": "/", "views": 1, "unique_users": 1}]
    next_day = f"site_id={SITE}&date=2025-11-16&by=entry_page"
    assert reporting.get(f"/stats/breakdown?{next_day}").get_json()["results"] == []
