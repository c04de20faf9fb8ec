"""What `/stats` and `/stats/breakdown` answer about rollups that reached their caps."""

import uuid

import pytest

from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.rollups.caps import Caps
from tasks.persist import store_batch
from tools.factories import make_event

SMALL = Caps(paths=3, event_types=2)
DAY = "site_id=site-abc-123&date=2025-11-15"


@pytest.fixture
def store_capped(db, counter_store):
    """Store events as a worker does and add them into rollups with small caps."""

    def store_events(events):
        store_batch(db, counter_store, uuid.uuid4().hex, [to_message(event) for event in events])
        compactor.compact(db, counter_store, SMALL)

    return store_events


def test_a_capped_day_reports_the_views_of_the_paths_it_did_not_keep(reporting, store_capped):
    store_capped([make_event(path=path) for path in ["/a", "/a", "/b", "/c"]])
    store_capped([make_event(path=path) for path in ["/d", "/d", "/d", "/a"]] + [make_event(path=None)])
    body = reporting.get(f"/stats?{DAY}").get_json()
    assert body["total_views"] == 9
    assert body["top_paths"] == [
        {"path": "/a", "views": 3},
        {"path": "/b", "views": 1},
        {"path": "/c", "views": 1},
    ]
    assert body["other_paths"] == {"views": 3}
    exact = reporting.get(f"/stats/aggregated?{DAY}").get_json()
    assert (exact["total_views"], exact["unique_users"]) == (body["total_views"], body["unique_users"])
    assert "other_paths" not in exact
    breakdown = reporting.get(f"/stats/breakdown?{DAY}&by=path").get_json()
    assert (breakdown["total"], breakdown["other"]) == (3, {"views": 3})


def test_a_day_under_the_caps_answers_as_before_and_agrees_with_the_aggregation(reporting, store_capped):
    store_capped(
        [make_event(path=path, user_id=user) for path, user in [("/a", "1"), ("/b", "2"), ("/a", "1")]]
    )
    body = reporting.get(f"/stats?{DAY}").get_json()
    assert list(body) == ["site_id", "date", "total_views", "unique_users", "top_paths"]
    assert body == reporting.get(f"/stats/aggregated?{DAY}").get_json()
    assert "other" not in reporting.get(f"/stats/breakdown?{DAY}&by=path").get_json()


def test_a_question_about_an_event_type_beyond_the_cap_says_what_it_cannot_count(reporting, store_capped):
    store_capped([make_event(event_type=kind) for kind in ["page_view", "click", "signup", "signup"]])
    body = reporting.get(f"/stats?{DAY}&event_type=signup").get_json()
    assert (body["total_views"], body["other_event_types"]) == (0, {"views": 2})
    assert reporting.get(f"/stats?{DAY}").get_json()["total_views"] == 4
    breakdown = reporting.get(f"/stats/breakdown?{DAY}&by=event_type").get_json()
    assert [row["value"] for row in breakdown["results"]] == ["click", "page_view"]
    assert breakdown["other"] == {"views": 2}
