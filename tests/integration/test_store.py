"""The store's writes against the real server of the session (FerretDB locally)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient

from app.rollups.buckets import Bucket
from app.rollups.tally import Tally
from app.store import fenced, is_ferretdb
from app.store import rollups as rollup_store


def test_a_compactor_slice_of_hundreds_of_rollups_is_saved_within_seconds(mongo_uri):
    """FerretDB never answered one update command of 100 or more replacements."""
    client: MongoClient = MongoClient(mongo_uri, tz_aware=True, socketTimeoutMS=10_000)
    db = client.get_default_database()
    site_id = f"site-{uuid.uuid4().hex[:8]}"
    tally = Tally.of([{"event_type": "page_view", "user_id": 1, "path": "/"}])
    buckets = [
        Bucket(site_id, "hour", datetime(2025, 11, 1 + hour // 24, hour % 24, tzinfo=UTC))
        for hour in range(250)
    ]
    rollup_store.save_rollups(db, [rollup_store.rollup_document(bucket, tally, "1-0") for bucket in buckets])
    tally.add(tally)
    rollup_store.save_rollups(db, [rollup_store.rollup_document(bucket, tally, "2-0") for bucket in buckets])
    stored = rollup_store.rollup_documents(db, (bucket.id for bucket in buckets))
    assert len(stored) == 250
    assert {document["through"] for document in stored.values()} == {"2-0"}
    client.close()


def test_rollups_taken_for_new_but_stored_meanwhile_are_replaced_on_the_real_server(mongo_uri):
    """The server reports which inserts it refused as duplicates; those are replaced."""
    client: MongoClient = MongoClient(mongo_uri, tz_aware=True, socketTimeoutMS=10_000)
    db = client.get_default_database()
    site_id = f"site-{uuid.uuid4().hex[:8]}"
    tally = Tally.of([{"event_type": "page_view", "user_id": 1, "path": "/"}])
    buckets = [Bucket(site_id, "hour", datetime(2025, 11, 1, hour, tzinfo=UTC)) for hour in range(6)]
    stored_before = [rollup_store.rollup_document(bucket, tally, "1-0") for bucket in buckets[::2]]
    rollup_store.save_rollups(db, stored_before)
    documents = [rollup_store.rollup_document(bucket, tally, "2-0") for bucket in buckets]
    rollup_store.save_rollups(db, documents, new={document["_id"] for document in documents})
    stored = rollup_store.rollup_documents(db, (bucket.id for bucket in buckets))
    assert {key: document["through"] for key, document in stored.items()} == {
        bucket.id: "2-0" for bucket in buckets
    }
    client.close()


def test_on_mongodb_a_rollup_write_older_than_the_stored_rollup_is_refused(mongo_uri):
    """The fence, applied by the server in the same operation as the write. FerretDB cannot
    (see app/store/rollups.py): there the compactor's lock check before each write is the fence."""
    client: MongoClient = MongoClient(mongo_uri, tz_aware=True, socketTimeoutMS=10_000)
    db = client.get_default_database()
    if is_ferretdb(db):
        client.close()
        pytest.skip("FerretDB applies no conditional write atomically")
    tally = Tally.of([{"event_type": "page_view", "user_id": 1, "path": "/"}])
    bucket = Bucket(f"site-{uuid.uuid4().hex[:8]}", "hour", datetime(2025, 11, 1, tzinfo=UTC))
    newer = rollup_store.rollup_document(bucket, tally, "2-0", fence=2)
    rollup_store.save_rollups(db, [newer], new={bucket.id})
    older = rollup_store.rollup_document(bucket, tally, "1-0", fence=1)
    with pytest.raises(fenced.StaleWriteError):
        rollup_store.save_rollups(db, [older])
    with pytest.raises(fenced.StaleWriteError):
        rollup_store.save_rollups(db, [older], new={bucket.id})
    assert rollup_store.rollup_documents(db, [bucket.id])[bucket.id]["through"] == "2-0"
    client.close()
