"""The compactor's lock on a shard guards every rollup write: a holder keeps it however long
its work takes, stops writing once it lost it, and a holder that stalled past its expiry
cannot overwrite what a newer holder wrote. On mongomock (MongoDB's semantics for the
fence) and an in-memory Redis."""

import time
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from redis.exceptions import LockNotOwnedError

from app.rollups import compactor
from app.store import events as event_store
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tasks.persist import store_batch
from tools.factories import make_message

SITE = "site-abc-123"
DAY = Period(SITE, date(2025, 11, 15), date(2025, 11, 15), ZoneInfo("UTC"))
LOCK_KEY = f"{compactor.LOCK_PREFIX}:{compactor.shard_of(SITE)}"
# A lock this short is outlasted by the slow steps below; the holder must keep it anyway.
SHORT_LOCK_SECONDS = 0.3
SLOW_STEP_SECONDS = 1.0


def views(db):
    return summary(db, DAY, 10).total_views


def outcome_of(call):
    """The error `call` raised, if any."""
    try:
        call()
    except Exception as error:
        return error
    return None


def test_a_rebuild_whose_raw_read_outlasts_the_lock_keeps_it(db, counter_store, monkeypatch):
    """`flask rebuild-rollups` on a large store read its events for longer than the lock lives,
    then failed with LockNotOwnedError, having let another compactor in meanwhile."""
    monkeypatch.setattr(compactor, "LOCK_SECONDS", SHORT_LOCK_SECONDS)
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    compactor.compact(db, counter_store)
    events_between = event_store.events_between
    compacted_meanwhile = []

    def slow_read(*args):
        time.sleep(SLOW_STEP_SECONDS)
        store_batch(db, counter_store, "b1", [make_message(user_id="u1")])
        compacted_meanwhile.append(compactor.compact(db, counter_store))  # another worker's compactor
        return events_between(*args)

    monkeypatch.setattr(event_store, "events_between", slow_read)
    assert compactor.rebuild(db, counter_store, SITE, DAY.first_day, DAY.last_day) == 1
    assert compacted_meanwhile == [0]  # the shard was still the rebuild's
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert views(db) == 2
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)


def test_a_round_whose_adding_outlasts_the_lock_keeps_it(db, counter_store, monkeypatch):
    """The work between a round's last read and its first save is bounded by counts, not
    time: a round that outlasted the lock failed, and so did every round after it."""
    monkeypatch.setattr(compactor, "LOCK_SECONDS", SHORT_LOCK_SECONDS)
    store_batch(db, counter_store, "b0", [make_message()])
    add = compactor.Rollup.add

    def slow_add(self, *args, **kwargs):
        time.sleep(SLOW_STEP_SECONDS / 3)
        return add(self, *args, **kwargs)

    monkeypatch.setattr(compactor.Rollup, "add", slow_add)
    assert compactor.compact(db, counter_store) == 1
    assert views(db) == 1


def test_no_rollup_write_is_sent_once_the_lock_is_lost(db, counter_store, monkeypatch):
    """The lock used to be checked only between slices of 200 rollups, each several commands."""
    store_batch(db, counter_store, "b0", [make_message()])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [make_message()])
    monkeypatch.setattr(rollup_store, "WRITES_PER_COMMAND", 1)  # the hour, day and week: 3 commands
    collection_type = type(db[rollup_store.ROLLUPS])
    bulk_write = collection_type.bulk_write
    sent = []

    def lose_the_lock_after_one_command(self, requests, *args, **kwargs):
        if self.name == rollup_store.ROLLUPS:
            sent.append(requests)
            counter_store.delete(LOCK_KEY)  # expired: another compactor may hold the shard now
        return bulk_write(self, requests, *args, **kwargs)

    monkeypatch.setattr(collection_type, "bulk_write", lose_the_lock_after_one_command)
    with pytest.raises(LockNotOwnedError):
        compactor.compact(db, counter_store)
    assert len(sent) == 1
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert views(db) == 2


def test_a_holder_stalled_before_a_write_cannot_overwrite_a_newer_holder_s_rollups(
    db, counter_store, monkeypatch
):
    """A holder checks its lock, stalls past the lock's expiry, then writes: without a fence
    its rollups replaced those of the compactor that took over, and events were lost."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [make_message(user_id="u1")])
    collection_type = type(db[rollup_store.ROLLUPS])
    bulk_write = collection_type.bulk_write
    stalled: list[bool] = []

    def stall_before_the_first_write(self, requests, *args, **kwargs):
        if self.name == rollup_store.ROLLUPS and not stalled:
            stalled.append(True)
            counter_store.delete(LOCK_KEY)  # the stalled holder's lock expired
            store_batch(db, counter_store, "b2", [make_message(user_id="u2")])
            compactor.compact(db, counter_store)  # another compactor takes the shard meanwhile
        return bulk_write(self, requests, *args, **kwargs)

    monkeypatch.setattr(collection_type, "bulk_write", stall_before_the_first_write)
    error = outcome_of(lambda: compactor.compact(db, counter_store))
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert views(db) == 3
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)
    assert isinstance(error, rollup_store.StaleWriteError)
