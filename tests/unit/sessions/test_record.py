"""The `visits` collection: one document per visit, kept by idempotent writes keyed by event."""

from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from app.sessions import locks
from app.sessions.record import REMEMBER_EVENT_IDS, record_visits
from app.settings import Settings
from app.store import visits
from app.store.events import event_document
from tasks.maintenance import settled_memory_seconds
from tasks.persist import store_batch
from tools.factories import make_message

START = datetime(2025, 11, 15, 10, 0, tzinfo=UTC)


def record(db, client, events):
    """Record as a batch does: the visits' locks taken, then given back."""
    held = locks.Held()
    record_visits(db, client, events, held)
    locks.give_back(client, held)


@pytest.fixture
def client():
    return fakeredis.FakeRedis()


def stored(minutes: float, path: str | None, event_type: str = "page_view", visit: str = "v1", **fields):
    """A stored event document of visit `visit`."""
    message = {
        "site_id": "shop",
        "event_type": event_type,
        "path": path,
        "user_id": "alice",
        "timestamp": (START + timedelta(minutes=minutes)).isoformat(),
        "event_id": f"00000000-0000-4000-8000-{int(minutes * 60):012d}",
        "visit_id": visit,
        **fields,
    }
    return event_document(message, START)


def test_a_visit_records_its_pages_entry_exit_and_duration(db, client):
    record(db, client, [stored(0, "/"), stored(3, "/pricing"), stored(5, None, "signup")])
    record(db, client, [stored(12, "/docs")])
    assert visits.find_visit(db, "v1") == {
        "_id": "v1",
        "site_id": "shop",
        "visitor": "alice",
        "start": START,
        "end": START + timedelta(minutes=12),
        "entry_page": "/",
        "entry_at": START,
        "exit_page": "/docs",
        "exit_at": START + timedelta(minutes=12),
        "page_count": 3,
        "event_count": 4,
        "duration": 720,
    }


def test_events_recorded_again_are_counted_once(db, client):
    batch = [stored(0, "/"), stored(3, "/pricing")]
    record(db, client, batch)
    record(db, client, batch)
    record(db, client, batch[1:])
    found = visits.find_visit(db, "v1")
    assert found is not None
    assert (found["page_count"], found["event_count"], found["duration"]) == (2, 2, 180)


def test_an_event_arriving_late_becomes_the_entry(db, client):
    record(db, client, [stored(5, "/pricing")])
    record(db, client, [stored(1, "/")])
    found = visits.find_visit(db, "v1")
    assert found is not None
    assert (found["entry_page"], found["exit_page"], found["start"]) == (
        "/",
        "/pricing",
        START + timedelta(minutes=1),
    )


def test_a_visit_of_one_page_is_a_bounce(db, client):
    record(db, client, [stored(0, "/", visit="v2")])
    found = visits.find_visit(db, "v2")
    assert found is not None
    assert (found["page_count"], found["duration"], found["entry_page"], found["exit_page"]) == (
        1,
        0,
        "/",
        "/",
    )


def test_events_without_a_visit_are_not_recorded(db, client):
    document = stored(0, "/")
    del document["visit_id"]
    record(db, client, [document])
    assert db[visits.VISITS].count_documents({}) == 0


def test_a_stored_batch_records_its_visits_and_a_redelivery_counts_nothing_twice(db, counter_store):
    batch = [
        make_message(user_id="bob", path=path, timestamp=(START + timedelta(minutes=minute)).isoformat())
        for minute, path in ((0, "/"), (4, "/pricing"), (9, "/signup"))
    ]
    for _ in range(2):
        store_batch(db, counter_store, "batch-1", batch, visits=True)
    [event_visit] = {event["visit_id"] for event in db["events"].find()}
    found = visits.find_visit(db, event_visit)
    assert found is not None
    assert (found["page_count"], found["entry_page"], found["exit_page"], found["duration"]) == (
        3,
        "/",
        "/signup",
        540,
    )
    assert not counter_store.keys(locks.LOCK_KEY_SPACE + "*")


def test_a_visit_forgets_the_ids_of_events_recorded_long_ago(db, client):
    old = stored(0, "/")
    first = visits.merged(None, [old], START, REMEMBER_EVENT_IDS)
    assert first is not None
    assert visits.merged(first, [old], START + REMEMBER_EVENT_IDS, REMEMBER_EVENT_IDS) is None
    later = visits.merged(first, [stored(5, "/pricing")], START + 2 * REMEMBER_EVENT_IDS, REMEMBER_EVENT_IDS)
    assert later is not None
    assert list(later["recent"]) == [stored(5, "/pricing")["event_id"]]
    assert (later["page_count"], later["entry_page"], later["exit_page"]) == (2, "/", "/pricing")


def test_event_ids_are_remembered_longer_than_a_delivery_can_come_back():
    assert REMEMBER_EVENT_IDS.total_seconds() > settled_memory_seconds(Settings())


def test_a_visit_remembers_at_most_its_last_event_ids(monkeypatch):
    monkeypatch.setattr(visits, "MAX_RECENT", 2)
    visit = None
    for minute in range(4):
        visit = visits.merged(
            visit, [stored(minute, "/")], START + timedelta(minutes=minute), REMEMBER_EVENT_IDS
        )
    assert visit is not None
    assert list(visit["recent"]) == [stored(2, "/")["event_id"], stored(3, "/")["event_id"]]
    assert visit["page_count"] == 4
