"""Events without `user_id` count their visitors in unique users, the same in /stats (from
the rollups), from the raw events, and in /stats/aggregated."""

import json
from datetime import UTC, datetime

from app.rollups import compactor
from tools.factories import make_event

DAY = "site_id=site-abc-123&date=2025-11-15"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1"
)


def post(client, user_agent, **fields):
    body = json.dumps(make_event(**{"user_id": None, **fields}))
    return client.post(
        "/event", data=body, content_type="application/json", headers={"User-Agent": user_agent}
    )


def test_visitors_without_user_ids_are_counted_once_each(ingestion, reporting, db, counter_store):
    for user_agent, path in [(FIREFOX, "/"), (FIREFOX, "/pricing"), (SAFARI, "/")]:
        assert post(ingestion, user_agent, path=path).status_code == 200
    compactor.compact(db, counter_store)
    from_rollups = reporting.get(f"/stats?{DAY}").get_json()
    assert from_rollups["unique_users"] == 2
    assert reporting.get(f"/stats/aggregated?{DAY}").get_json() == from_rollups
    # An interval the rollups cannot answer exactly is counted from the raw events.
    raw = reporting.get("/stats?site_id=site-abc-123&start=2025-11-15&end=2025-11-15&tz=Asia/Kathmandu")
    assert raw.get_json()["unique_users"] == 2


def test_a_user_id_counts_apart_from_visitor_ids(ingestion, reporting, db, counter_store):
    post(ingestion, FIREFOX)
    post(ingestion, FIREFOX, user_id="user-1")
    compactor.compact(db, counter_store)
    assert reporting.get(f"/stats?{DAY}").get_json()["unique_users"] == 2
    assert reporting.get(f"/stats/aggregated?{DAY}").get_json()["unique_users"] == 2


def test_realtime_counts_visitors_without_user_ids(ingestion, reporting):
    now = datetime.now(UTC).isoformat()
    for user_agent in (FIREFOX, FIREFOX, SAFARI):
        assert post(ingestion, user_agent, timestamp=now).status_code == 200
    body = reporting.get("/stats/realtime?site_id=site-abc-123").get_json()
    assert (body["events"], body["unique_users"]) == (3, 2)
