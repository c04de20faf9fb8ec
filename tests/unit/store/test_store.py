from datetime import UTC, datetime

from pymongo.errors import BulkWriteError

from app.queue import counters
from app.store import dead_letters
from app.store import events as event_store
from tools.factories import make_message


def test_the_event_document_has_the_contract_fields_with_a_utc_date():
    now = datetime(2025, 11, 15, 12, tzinfo=UTC)
    document = event_store.event_document(make_message(timestamp="2025-11-15T01:30:00+02:00"), now)
    assert document["timestamp"] == datetime(2025, 11, 14, 23, 30, tzinfo=UTC)
    assert document["created_at"] == document["updated_at"] == now
    assert {"site_id", "event_type", "path", "user_id", "event_id"} <= set(document)


def test_inserting_the_same_messages_again_changes_nothing(db):
    first, second, third = make_message(), make_message(), make_message()
    assert event_store.insert_events(db, [first, second]).inserted == [first, second]
    again = event_store.insert_events(db, [first, second, third])
    assert again.inserted == [third]
    assert again.rejected == []
    assert db[event_store.EVENTS].count_documents({}) == 3


def test_an_event_the_server_refuses_is_returned_with_its_error(db, monkeypatch):
    good, bad = make_message(), make_message()

    def refuse_second(documents, ordered):
        raise BulkWriteError(
            {
                "writeErrors": [{"index": 1, "code": 121, "errmsg": "Document failed validation"}],
                "nInserted": 1,
            }
        )

    monkeypatch.setattr(
        db[event_store.EVENTS].__class__, "insert_many", lambda self, d, ordered: refuse_second(d, ordered)
    )
    outcome = event_store.insert_events(db, [good, bad])
    assert outcome.inserted == [good]
    assert outcome.rejected == [(bad, "Document failed validation")]


def test_dead_letters_keep_the_event_and_error_once_per_event(db):
    event = make_message()
    assert dead_letters.dead_letter(db, [(event, "boom")]) == 1
    assert dead_letters.dead_letter(db, [(event, "boom again")]) == 0
    [letter] = dead_letters.dead_letters(db, limit=10)
    assert letter["event"] == event
    assert letter["error"] == "boom"
    assert isinstance(letter["failed_at"], datetime)
    assert dead_letters.count_dead_letters(db) == 1
    assert dead_letters.remove_dead_letters(db, [event["event_id"]]) == 1
    assert dead_letters.count_dead_letters(db) == 0


def test_the_site_day_of_a_message_is_its_utc_day():
    assert counters.site_day(make_message(timestamp="2025-11-16T00:30:00+01:00")) == (
        "site-abc-123",
        "2025-11-15",
    )


def test_indexes_of_the_contract_exist_and_creating_them_again_is_harmless(db):
    event_store.ensure_indexes(db)
    keys = [tuple(index["key"]) for index in db[event_store.EVENTS].index_information().values()]
    for expected in [("site_id",), ("user_id",), ("timestamp",), ("site_id", "timestamp"), ("event_id",)]:
        assert any(tuple(name for name, _ in key) == expected for key in keys)
