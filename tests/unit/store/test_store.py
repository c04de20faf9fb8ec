from datetime import UTC, datetime

import pytest
from pymongo.errors import BulkWriteError

from app.queue import counters
from app.rollups.buckets import Bucket
from app.rollups.tally import Tally
from app.store import events as event_store
from app.store import fenced, only_duplicates
from app.store import rollups as rollup_store
from tools.factories import make_message


def test_the_event_document_has_the_contract_fields_with_a_utc_date():
    now = datetime(2025, 11, 15, 12, tzinfo=UTC)
    document = event_store.event_document(make_message(timestamp="2025-11-15T01:30:00+02:00"), now)
    assert document["timestamp"] == datetime(2025, 11, 14, 23, 30, tzinfo=UTC)
    assert document["created_at"] == document["updated_at"] == now
    assert {"site_id", "event_type", "path", "user_id", "event_id"} <= set(document)


def test_the_event_document_keeps_what_the_page_sent_and_leaves_out_what_it_did_not():
    page = {"url": "https://shop.example/a", "title": "A", "props": {"plan": "pro"}}
    message = make_message(**page, referrer=None, user_agent="Mozilla/5.0") | {"screen": None}
    page["visitor_id"] = message["visitor_id"] = "f" * 32  # derived in ingestion
    document = event_store.event_document(message, datetime(2025, 11, 15, 12, tzinfo=UTC))
    assert {name: document[name] for name in page} == page
    assert not {"referrer", "screen", "language", "country", "user_agent", "ip"} & set(document)


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


def test_the_site_day_of_a_message_is_its_utc_day():
    assert counters.site_day(make_message(timestamp="2025-11-16T00:30:00+01:00")) == (
        "site-abc-123",
        "2025-11-15",
    )


def secondary_index_keys(db):
    indexes = db[event_store.EVENTS].index_information().values()
    return {tuple(name for name, _ in index["key"]) for index in indexes} - {("_id",)}


def test_events_get_their_unique_site_and_event_index_and_lose_the_retired_ones(db):
    for keys in ("site_id", "user_id", "timestamp", [("site_id", 1), ("timestamp", 1)], "event_id"):
        db[event_store.EVENTS].create_index(keys)  # as earlier versions did
    event_store.ensure_indexes(db)
    event_store.ensure_indexes(db)  # again: harmless
    assert secondary_index_keys(db) == {("site_id", "event_id")}
    [unique] = [index for index in db[event_store.EVENTS].index_information().values() if index.get("unique")]
    assert list(unique["key"]) == [("site_id", 1), ("event_id", 1)]


def test_on_mongodb_a_redelivered_batch_finds_its_events_with_one_query(db, monkeypatch):
    messages = [make_message() for _ in range(50)]
    event_store.insert_events(db, messages, "batch-1")
    event_store.insert_events(db, [make_message(event_id=messages[0]["event_id"])], "batch-2")
    collection_type = type(db[event_store.EVENTS])
    queries = []
    real_find = collection_type.find

    def counted_find(self, *args, **kwargs):
        queries.append(args)
        return real_find(self, *args, **kwargs)

    monkeypatch.setattr(collection_type, "find", counted_find)
    monkeypatch.setattr(collection_type, "find_one", None)  # one lookup per event would fail
    owned = event_store.owned_events(db, "batch-1", messages)
    assert len(owned) == 50
    assert len(queries) == 1


def rollup_documents_of(site_id, through, hours=3):
    tally = Tally.of([{"event_type": "page_view", "user_id": 1, "path": "/"}])
    buckets = [Bucket(site_id, "hour", datetime(2025, 11, 1, hour, tzinfo=UTC)) for hour in range(hours)]
    return [rollup_store.rollup_document(bucket, tally, through) for bucket in buckets]


def test_new_rollups_are_inserted_not_replaced(db, monkeypatch):
    documents = rollup_documents_of("site-1", "1-0")
    monkeypatch.setattr(type(db[rollup_store.ROLLUPS]), "bulk_write", None)  # a replacement would fail
    rollup_store.save_rollups(db, documents, new={document["_id"] for document in documents})
    stored = rollup_store.rollup_documents(db, [document["_id"] for document in documents])
    assert stored == {document["_id"]: document for document in documents}


def test_a_new_rollup_stored_meanwhile_is_replaced(db):
    (first,) = rollup_documents_of("site-1", "1-0", hours=1)
    rollup_store.save_rollups(db, [first])
    (second,) = rollup_documents_of("site-1", "2-0", hours=1)
    rollup_store.save_rollups(db, [second], new={second["_id"]})
    assert rollup_store.rollup_documents(db, [second["_id"]])[second["_id"]]["through"] == "2-0"


def test_a_new_rollup_that_counts_nothing_is_not_stored(db):
    (empty,) = rollup_documents_of("site-1", "1-0", hours=1)
    empty["events"] = 0
    rollup_store.save_rollups(db, [empty], new={empty["_id"]})
    assert rollup_store.rollup_documents(db, [empty["_id"]]) == {}


WRITE_CONCERN_FAILED = {
    "writeErrors": [],
    "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
    "nInserted": 1,
}


def inserting_then_failing_the_write_concern(collection_type):
    """`insert_many` as a server that applied the writes but could not confirm the write
    concern: under w=majority they may yet be rolled back."""
    insert_many = collection_type.insert_many

    def insert_many_unconfirmed(self, documents, *args, **kwargs):
        insert_many(self, documents, *args, **kwargs)
        raise BulkWriteError(WRITE_CONCERN_FAILED)

    return insert_many_unconfirmed


def test_a_bulk_error_with_a_write_concern_error_is_not_only_duplicates():
    duplicate = {"index": 0, "code": 11000, "errmsg": "E11000"}
    assert only_duplicates(BulkWriteError({"writeErrors": [duplicate], "writeConcernErrors": []}))
    assert not only_duplicates(BulkWriteError(WRITE_CONCERN_FAILED))
    assert not only_duplicates(BulkWriteError({**WRITE_CONCERN_FAILED, "writeErrors": [duplicate]}))


def test_a_marker_whose_write_concern_failed_is_not_taken_as_written(db, monkeypatch):
    collection_type = type(db[rollup_store.ROLLUP_BATCHES])
    monkeypatch.setattr(
        collection_type, "insert_many", inserting_then_failing_the_write_concern(collection_type)
    )
    with pytest.raises(BulkWriteError):
        rollup_store.mark_batches_applied(db, ["batch-1@0"])


def test_new_rollups_whose_write_concern_failed_are_not_taken_as_saved(db, monkeypatch):
    documents = rollup_documents_of("site-1", "1-0")
    collection_type = type(db[rollup_store.ROLLUPS])
    monkeypatch.setattr(
        collection_type, "insert_many", inserting_then_failing_the_write_concern(collection_type)
    )
    with pytest.raises(BulkWriteError):
        rollup_store.save_rollups(db, documents, new={document["_id"] for document in documents})


def refusal_of(write):
    """The error `write` raised, if any."""
    try:
        write()
    except Exception as error:
        return error
    return None


def test_a_rollup_write_older_than_the_stored_rollup_is_refused(db):
    """The fence: a compactor that lost its lock (and its writes' token with it) cannot
    replace, or empty, a rollup that a newer holder wrote."""
    (newer,) = rollup_documents_of("site-1", "2-0", hours=1)
    newer["fence"] = 2
    rollup_store.save_rollups(db, [newer], new={newer["_id"]})
    (older,) = rollup_documents_of("site-1", "1-0", hours=1)
    older["fence"] = 1
    refusals = [
        refusal_of(lambda: rollup_store.save_rollups(db, [older])),
        refusal_of(lambda: rollup_store.save_rollups(db, [older], new={older["_id"]})),  # stored meanwhile
        refusal_of(lambda: rollup_store.save_rollups(db, [{**older, "events": 0}])),  # emptied
    ]
    assert rollup_store.rollup_documents(db, [newer["_id"]]) == {newer["_id"]: newer}
    assert all(isinstance(refusal, fenced.StaleWriteError) for refusal in refusals)
    rollup_store.save_rollups(db, [{**newer, "through": "3-0"}])  # the holder itself writes again
    assert rollup_store.rollup_documents(db, [newer["_id"]])[newer["_id"]]["through"] == "3-0"


def test_a_rollup_write_of_another_hold_with_the_same_fence_is_refused_and_names_the_fence(db):
    """Two holds drew one number from a fence counter that went back: the stored fence being
    no larger let the stalled one's write replace the newer one's."""
    (stored,) = rollup_documents_of("site-1", "2-0", hours=1)
    rollup_store.save_rollups(db, [{**stored, "fence": 7, "holder": "newer"}], new={stored["_id"]})
    refusal = refusal_of(lambda: rollup_store.save_rollups(db, [{**stored, "fence": 7, "holder": "stalled"}]))
    assert isinstance(refusal, fenced.StaleWriteError)
    assert refusal.fence == 7
    rollup_store.save_rollups(db, [{**stored, "fence": 7, "holder": "newer", "through": "3-0"}])
    assert rollup_store.rollup_documents(db, [stored["_id"]])[stored["_id"]]["through"] == "3-0"
