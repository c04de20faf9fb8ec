"""A write the server applied but did not confirm under its write concern (a `w: majority`
write that may still be rolled back) is a failure to retry, never a success."""

import pytest
from celery.exceptions import Retry
from pymongo.errors import BulkWriteError, WriteConcernError

from app.queue import ledger
from app.store import dead_letters
from app.store import events as event_store
from tasks import persist
from tools.factories import make_message

UNCONFIRMED = {
    "code": 64,
    "codeName": "WriteConcernFailed",
    "errmsg": "waiting for replication timed out",
}


@pytest.fixture
def unconfirmed_inserts(db, monkeypatch):
    """Every insert_many writes its documents, then reports the write concern unmet."""
    collection_type = type(db[event_store.EVENTS])
    real_insert_many = collection_type.insert_many

    def insert_unconfirmed(self, documents, ordered=True):
        documents = list(documents)
        real_insert_many(self, documents, ordered=ordered)
        raise BulkWriteError(
            {
                "writeErrors": [],
                "writeConcernErrors": [UNCONFIRMED],
                "nInserted": len(documents),
                "nUpserted": 0,
                "nMatched": 0,
                "nModified": 0,
                "nRemoved": 0,
                "upserted": [],
            }
        )

    monkeypatch.setattr(collection_type, "insert_many", insert_unconfirmed)


def test_events_stored_without_the_write_concern_met_are_raised_not_counted(db, unconfirmed_inserts):
    with pytest.raises(WriteConcernError, match="waiting for replication timed out"):
        event_store.insert_events(db, [make_message(), make_message()], "batch-1")


def test_dead_letters_kept_without_the_write_concern_met_are_raised(db, unconfirmed_inserts):
    with pytest.raises(WriteConcernError):
        dead_letters.dead_letter(db, [(make_message(), "refused")], batch_id="batch-0")


def test_a_batch_whose_write_concern_failed_is_retried_and_stays_in_the_ledger(
    ingestion_app, counter_store, unconfirmed_inserts, monkeypatch
):
    pipe = counter_store.pipeline()
    ledger.record(pipe, "batch-1", [make_message()])
    pipe.execute()
    retries = []

    def schedule_retry(**kwargs):
        retries.append(kwargs)
        return Retry()

    monkeypatch.setattr(persist.persist_events, "retry", schedule_retry)
    with ingestion_app.app_context():
        persist.persist_events.apply([[make_message()]], task_id="batch-1")
    assert len(retries) == 1
    assert ledger.outstanding(counter_store) == 1
