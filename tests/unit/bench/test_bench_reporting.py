"""`make bench-reporting`'s bulk loader stores what the worker path stores.

The 10-million-event run loads in bulk; its figures only stand for the product if the bulk
loader's documents and rollups are the worker's. Each loader runs on its own mongomock
database and in-memory Redis, over fewer sites and days: mongomock's `replace_one` scans
every rollup.
"""

from datetime import datetime
from typing import Any

import fakeredis
import mongomock
import pytest
from pymongo.database import Database

from app import migrations
from app.rollups import compactor
from app.rollups.tally import Tally
from app.store import events as event_store
from app.store import rollups as rollup_store
from bench import reporting

DOCUMENT_FIELDS = ("_id", "event_id", "site_id", "event_type", "path", "user_id", "timestamp")


def loaded_with(loader: str, traffic: reporting.Traffic) -> tuple[Database[Any], reporting.Loaded]:
    db: Database[Any] = mongomock.MongoClient(tz_aware=True).get_database("analytics")
    loaded = reporting.Loaded(loader)
    reporting.LOADERS[loader](db, fakeredis.FakeRedis(), traffic, loaded)
    return db, loaded


@pytest.fixture(scope="module")
def both() -> dict[str, tuple[Database[Any], reporting.Loaded]]:
    traffic = reporting.Traffic(3000, seed=7, days=2, sites=5, busy_day_events=300)
    return {loader: loaded_with(loader, traffic) for loader in reporting.LOADERS}


def test_both_loaders_store_the_same_events(both):
    (worker_db, worker), (bulk_db, bulk) = both["worker"], both["bulk"]

    def events(db):
        return sorted(tuple(event[key] for key in DOCUMENT_FIELDS) for event in db[event_store.EVENTS].find())

    assert worker.stored_events == bulk.stored_events == 3000
    assert events(worker_db) == events(bulk_db)
    assert worker.site_days == bulk.site_days


def test_both_loaders_store_the_same_rollups(both):
    def rollups(db):
        return {
            document["_id"]: (document["site_id"], document["level"], document["start"], document["events"])
            for document in db[rollup_store.ROLLUPS].find()
        }

    def tallies(db):
        return {
            document["_id"]: Tally.unpack(document["tally"]) for document in db[rollup_store.ROLLUPS].find()
        }

    worker_db, bulk_db = both["worker"][0], both["bulk"][0]
    assert rollups(worker_db) == rollups(bulk_db)
    assert len(rollups(bulk_db)) > 200  # sites, hours and days
    assert tallies(worker_db) == tallies(bulk_db)


def test_the_bulk_loader_marks_every_batch_as_added_into_the_rollups(both):
    bulk_db = both["bulk"][0]
    batch_ids = bulk_db[event_store.EVENTS].distinct("batch_id")
    assert len(batch_ids) == 3  # 3,000 events in batches of 1,000
    markers = {
        compactor.marker(batch_id, shard) for batch_id in batch_ids for shard in range(compactor.SHARDS)
    }
    assert rollup_store.applied_batches(bulk_db, markers) == markers


def test_the_busy_site_day_lies_among_the_other_sites_events_in_time_order():
    traffic = reporting.Traffic(2000, seed=3, days=3, sites=5, busy_day_events=500)
    messages = list(traffic.messages())
    busy = [message for message in messages if message["site_id"] == reporting.BUSY_SITE]
    times = [datetime.fromisoformat(message["timestamp"]) for message in messages]

    assert len(messages) == 2000
    assert len(busy) == 500
    assert {message["timestamp"][:10] for message in busy} == {traffic.busy_day.isoformat()}
    assert times == sorted(times)
    assert messages.index(busy[0]) < len(messages) - 500  # not all after the others
    assert {"url", "referrer", "browser", "source", "visitor_id"} <= busy[0].keys()


def test_the_zipf_sites_rows_leave_the_busy_site_out():
    loaded = reporting.Loaded("bulk")
    loaded.site_days.update({(reporting.BUSY_SITE, "2025-11-14"): 500, ("site-001", "2025-11-14"): 40})

    assert loaded.busiest_site_day() == ("site-001", "2025-11-14")
    assert loaded.busiest_site() == "site-001"


def test_both_loaders_leave_a_store_with_no_migration_pending(both):
    # A worker starting on a new store records every step done; a step left pending would
    # send quarter-hour zones (Asia/Kolkata) to the raw events instead of the rollups.
    for db, _ in both.values():
        assert migrations.pending(db) == []
