"""The whole pipeline over HTTP: ingestion -> Redis -> Celery worker -> MongoDB -> reporting."""

import random

import requests

from tests.integration.client import get_stats, post_event, wait_for_views
from tools.factories import SEED_EXAMPLE_STATS, make_event, new_site_id, seed_example_events


def test_the_original_readme_example_gives_its_expected_stats(pipeline):
    site_id = new_site_id()
    for event in seed_example_events(site_id):
        response = post_event(pipeline["ingestion"], event)
        assert response.status_code == 200
        assert response.json() == {"status": "accepted"}
    stats = wait_for_views(pipeline["reporting"], site_id, "2025-11-15", 4)
    assert stats == {"site_id": site_id, **SEED_EXAMPLE_STATS}
    assert get_stats(pipeline["reporting"], site_id, "2025-11-15", "/stats/aggregated") == stats


def test_stats_and_aggregated_stats_agree_on_a_mixed_day(pipeline, db):
    site_id = new_site_id()
    rng = random.Random(7)
    events = [
        make_event(
            site_id=site_id,
            path=rng.choice([None, "/", "/a", "/b.c", "/$d", "/ü", *(f"/p{n}" for n in range(12))]),
            user_id=rng.choice([None, "", *(f"u{n}" for n in range(9))]),
            timestamp=f"2025-11-15T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z",
        )
        for _ in range(120)
    ]
    for event in events:
        assert post_event(pipeline["ingestion"], event).status_code == 200
    stats = wait_for_views(pipeline["reporting"], site_id, "2025-11-15", len(events))
    assert stats["total_views"] == len(events)
    # Events without a user count as their visitor: this test, one address and user agent.
    assert stats["unique_users"] == len({e.get("user_id") or "visitor" for e in events})
    assert get_stats(pipeline["reporting"], site_id, "2025-11-15", "/stats/aggregated") == stats
    assert db.events.count_documents({"site_id": site_id}) == len(events)


def test_an_event_counts_on_the_utc_day_of_its_timestamp(pipeline):
    site_id = new_site_id()
    post_event(pipeline["ingestion"], make_event(site_id=site_id, timestamp="2025-11-16T00:30:00+01:00"))
    post_event(pipeline["ingestion"], make_event(site_id=site_id, timestamp="2025-11-15T12:00:00"))
    assert wait_for_views(pipeline["reporting"], site_id, "2025-11-15", 2)["total_views"] == 2
    assert get_stats(pipeline["reporting"], site_id, "2025-11-16")["total_views"] == 0


def test_the_stored_document_has_the_contract_fields(pipeline, db):
    site_id = new_site_id()
    post_event(pipeline["ingestion"], make_event(site_id=site_id, timestamp="2025-11-15T10:00:00+02:00"))
    wait_for_views(pipeline["reporting"], site_id, "2025-11-15", 1)
    document = db.events.find_one({"site_id": site_id})
    assert document["timestamp"].isoformat() == "2025-11-15T08:00:00+00:00"
    assert document["created_at"] == document["updated_at"]
    assert document["event_type"] == "page_view"
    assert document["path"] == "/pricing"


def test_events_have_their_unique_site_and_event_index_on_either_server(pipeline, db):
    keys = {tuple(name for name, _ in index["key"]) for index in db.events.index_information().values()}
    assert keys == {("_id",), ("site_id", "event_id")}


def test_a_retried_post_with_the_same_event_id_is_stored_once_whatever_its_timestamp(pipeline, db):
    site_id, other_site = new_site_id(), new_site_id()
    event = make_event(site_id=site_id, event_id="0b8f4a52-5c0e-4e39-9d7e-3f1a2b6c7d8e")
    for _ in range(3):
        assert post_event(pipeline["ingestion"], event).status_code == 200
    # A client that lets the server stamp its events sends its retry with another time.
    assert (
        post_event(pipeline["ingestion"], {**event, "timestamp": "2025-11-15T10:00:09Z"}).status_code == 200
    )
    post_event(pipeline["ingestion"], make_event(site_id=site_id))
    post_event(pipeline["ingestion"], {**event, "site_id": other_site})  # another site's event, same id
    wait_for_views(pipeline["reporting"], site_id, "2025-11-15", 2)
    wait_for_views(pipeline["reporting"], other_site, "2025-11-15", 1)
    assert db.events.count_documents({"site_id": site_id}) == 2
    assert get_stats(pipeline["reporting"], site_id, "2025-11-15")["total_views"] == 2


def test_both_services_report_healthy(pipeline):
    import requests

    assert requests.get(f"{pipeline['ingestion']}/health", timeout=5).json() == {
        "status": "ok",
        "service": "ingestion-service",
    }
    assert requests.get(f"{pipeline['reporting']}/health", timeout=5).json() == {
        "status": "ok",
        "service": "reporting-service",
    }


def test_visitors_without_user_ids_are_told_apart_by_user_agent(pipeline, db):
    site_id = new_site_id()
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
    safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile"
    for user_agent, path in [(firefox, "/"), (firefox, "/pricing"), (safari, "/")]:
        event = make_event(site_id=site_id, user_id=None, path=path)
        response = requests.post(
            f"{pipeline['ingestion']}/event", json=event, headers={"User-Agent": user_agent}, timeout=10
        )
        assert response.status_code == 200
    stats = wait_for_views(pipeline["reporting"], site_id, "2025-11-15", 3)
    assert (stats["total_views"], stats["unique_users"]) == (3, 2)
    assert get_stats(pipeline["reporting"], site_id, "2025-11-15", "/stats/aggregated") == stats
    stored = list(db.events.find({"site_id": site_id}))
    assert len({event["visitor_id"] for event in stored}) == 2
    assert not [name for event in stored for name in ("ip", "user_agent") if name in event]
