from datetime import UTC, date, datetime

from app import storage
from app.schemas import event_schema
from tests.factories import make_event


def message(**overrides):
    return event_schema.dump(event_schema.load(make_event(**overrides)))


def test_the_event_document_has_the_contract_fields_with_a_utc_date():
    now = datetime(2025, 11, 15, 12, tzinfo=UTC)
    document = storage.event_document(message(timestamp="2025-11-15T01:30:00+02:00"), now)
    assert document["timestamp"] == datetime(2025, 11, 14, 23, 30, tzinfo=UTC)
    assert document["created_at"] == document["updated_at"] == now
    assert {"site_id", "event_type", "path", "user_id", "event_id"} <= set(document)


def test_inserting_the_same_messages_again_changes_nothing(db):
    messages = [message(), message()]
    assert storage.insert_events(db, messages) == 2
    assert storage.insert_events(db, [*messages, message()]) == 1
    assert db[storage.EVENTS].count_documents({}) == 3


def test_indexes_of_the_contract_exist_and_creating_them_again_is_harmless(db):
    storage.ensure_indexes(db)
    keys = [tuple(index["key"]) for index in db[storage.EVENTS].index_information().values()]
    for expected in [("site_id",), ("user_id",), ("timestamp",), ("site_id", "timestamp"), ("event_id",)]:
        assert any(tuple(name for name, _ in key) == expected for key in keys)


def test_a_utc_day_is_half_open_from_midnight_to_midnight():
    start, end = storage.utc_day_bounds(date(2025, 11, 15))
    assert start == datetime(2025, 11, 15, tzinfo=UTC)
    assert end == datetime(2025, 11, 16, tzinfo=UTC)
