"""`/stats/realtime` counts every recent event ingestion accepts, as far ahead of the server's
clock as its window reaches (EVENT_MAX_AHEAD_SECONDS), with the default window and a wider one."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.rollups import realtime
from app.settings import Settings
from tools.factories import make_event

EVENTS_KEY = f"{realtime.PREFIX}:site-abc-123:events"
# Time the request takes to reach ingestion's clock after the test read its own.
MARGIN = timedelta(seconds=5)


@pytest.fixture(params=[Settings().event_max_ahead_seconds, 900], ids=["default-window", "wider-window"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return replace(settings, event_max_ahead_seconds=request.param)


def ahead(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.event_max_ahead_seconds)


def test_an_event_at_the_far_edge_of_ingestion_s_window_counts_in_realtime(ingestion, reporting, settings):
    latest = datetime.now(UTC) + ahead(settings) - MARGIN
    event = make_event(timestamp=latest.isoformat(), user_id="fast-clock")
    assert ingestion.post("/event", json=event).status_code == 200
    body = reporting.get("/stats/realtime?site_id=site-abc-123").get_json()
    assert (body["events"], body["unique_users"]) == (1, 1)


def test_an_event_beyond_ingestion_s_window_is_not_kept(counter_store, settings):
    beyond = datetime.now(UTC) + ahead(settings) + MARGIN
    pipe = counter_store.pipeline()
    event = {**make_event(), "event_id": "e1", "timestamp": beyond}
    realtime.record(pipe, [event], max_ahead_seconds=settings.event_max_ahead_seconds)
    pipe.execute()
    assert counter_store.zcard(EVENTS_KEY) == 0


def test_the_sets_live_until_the_furthest_event_ahead_has_left_the_window(ingestion, counter_store, settings):
    latest = datetime.now(UTC) + ahead(settings) - MARGIN
    assert ingestion.post("/event", json=make_event(timestamp=latest.isoformat())).status_code == 200
    counted_until = latest + timedelta(seconds=realtime.WINDOW_SECONDS)
    assert datetime.now(UTC) + timedelta(seconds=counter_store.ttl(EVENTS_KEY)) >= counted_until


def test_a_window_reaching_past_the_calendar_keeps_the_sets_within_it(counter_store):
    """Ingestion takes such a setting as 'up to the calendar's end'; Redis refuses an expiry
    beyond about 2**63 milliseconds, which would fail every batch's transaction."""
    pipe = counter_store.pipeline()
    realtime.record(pipe, [{**make_event(), "event_id": "e1", "timestamp": datetime.now(UTC)}], 10**20)
    pipe.execute()
    until_calendar_end = datetime.max.replace(tzinfo=UTC) - datetime.now(UTC)
    assert (
        0
        < counter_store.ttl(EVENTS_KEY)
        <= (until_calendar_end + timedelta(seconds=realtime.KEEP_SECONDS)).total_seconds()
    )


def test_the_sets_keep_digests_of_a_bounded_number_of_ids(counter_store, monkeypatch):
    """A forger's long random user ids each took a member of their own length in Redis."""
    monkeypatch.setattr(realtime, "MAX_PER_SITE", 50)
    now = datetime.now(UTC)
    events = [
        {**make_event(user_id=f"{n:04d}" + "u" * 252), "event_id": f"e{n}", "timestamp": now}
        for n in range(80)
    ]
    pipe = counter_store.pipeline()
    realtime.record(pipe, events[:60], max_ahead_seconds=60)
    realtime.record(pipe, events[60:], max_ahead_seconds=60)
    pipe.execute()
    users_key = f"{realtime.PREFIX}:site-abc-123:users"
    assert counter_store.zcard(EVENTS_KEY) == counter_store.zcard(users_key) == 50
    assert max(len(member) for member in counter_store.zrange(users_key, 0, -1)) == 8
    assert realtime.recent(counter_store, "site-abc-123", 60) == realtime.Recent(50, 50, capped=True)


def test_timestamps_ahead_of_the_clock_never_push_recent_events_out(counter_store, monkeypatch):
    """Trimmed by rank alone, the members a sender dated ahead of the clock kept the highest
    scores, and every real event after them was trimmed at once."""
    monkeypatch.setattr(realtime, "MAX_PER_SITE", 50)
    now = datetime.now(UTC)
    ahead_of_clock = [
        {**make_event(user_id=f"forged-{n}"), "event_id": f"f{n}", "timestamp": now + timedelta(seconds=50)}
        for n in range(50)
    ]
    real = [{**make_event(user_id=f"real-{n}"), "event_id": f"r{n}", "timestamp": now} for n in range(10)]
    pipe = counter_store.pipeline()
    realtime.record(pipe, ahead_of_clock, max_ahead_seconds=60, now=now.timestamp())
    realtime.record(pipe, real, max_ahead_seconds=60, now=now.timestamp())
    pipe.execute()
    for key in (EVENTS_KEY, f"{realtime.PREFIX}:site-abc-123:users"):
        assert counter_store.zcard(key) == 50
        assert counter_store.zcount(key, "-inf", now.timestamp()) == 10


def test_realtime_says_when_its_counts_reached_the_cap(ingestion, reporting, monkeypatch):
    monkeypatch.setattr(realtime, "MAX_PER_SITE", 3)
    for n in range(3):
        event = make_event(timestamp=datetime.now(UTC).isoformat())
        assert ingestion.post("/event", json=event).status_code == 200
        body = reporting.get("/stats/realtime?site_id=site-abc-123").get_json()
        assert body.get("capped") is (True if n == 2 else None)
