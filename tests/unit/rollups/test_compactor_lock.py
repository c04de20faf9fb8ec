"""The compactor's lock on a shard guards every rollup write: a holder keeps it however long
its work takes, stops writing once it lost it, and a holder that stalled past its expiry
cannot overwrite what a newer holder wrote. On mongomock (MongoDB's semantics for the
fence) and an in-memory Redis."""

import time
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from redis.exceptions import LockNotOwnedError

from app.rollups import compactor, lease
from app.store import events as event_store
from app.store import fenced
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
    monkeypatch.setattr(fenced, "WRITES_PER_COMMAND", 1)  # the hour, day and week: 3 commands
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


def compact_with_a_stall_before_the_first_write(db, counter_store, monkeypatch, meanwhile):
    """Compact, the holder stalling before its first rollup write until its lock expired and
    `meanwhile` ran; then compact again, as the next holder. Return what the stalled holder
    raised."""
    collection_type = type(db[rollup_store.ROLLUPS])
    bulk_write = collection_type.bulk_write
    stalled: list[bool] = []

    def stall_before_the_first_write(self, requests, *args, **kwargs):
        if self.name == rollup_store.ROLLUPS and not stalled:
            stalled.append(True)
            counter_store.delete(LOCK_KEY)  # the stalled holder's lock expired
            meanwhile()
        return bulk_write(self, requests, *args, **kwargs)

    monkeypatch.setattr(collection_type, "bulk_write", stall_before_the_first_write)
    error = outcome_of(lambda: compactor.compact(db, counter_store))
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    return error


def test_a_holder_stalled_before_a_write_cannot_overwrite_a_newer_holder_s_rollups(
    db, counter_store, monkeypatch
):
    """A holder checks its lock, stalls past the lock's expiry, then writes: without a fence
    its rollups replaced those of the compactor that took over, and events were lost."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [make_message(user_id="u1")])

    def another_compactor_takes_the_shard():
        store_batch(db, counter_store, "b2", [make_message(user_id="u2")])
        compactor.compact(db, counter_store)

    error = compact_with_a_stall_before_the_first_write(
        db, counter_store, monkeypatch, another_compactor_takes_the_shard
    )
    assert views(db) == 3
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)
    assert isinstance(error, LockNotOwnedError)  # its write refused, it found its lock lost


FENCE_KEY = lease.fence_key(LOCK_KEY)


def test_a_fence_counter_lost_with_redis_s_data_does_not_stop_the_shard(db, counter_store):
    """Redis restored from an older snapshot restarts the counter below the stored rollups'
    fences: every later write was refused, the backlog grew for good and a rebuild failed too."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    for _ in range(3):  # a few holds: each takes the next number
        compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [make_message(user_id="u1")])
    compactor.compact(db, counter_store)
    counter_store.delete(FENCE_KEY)  # Redis lost its data
    store_batch(db, counter_store, "b2", [make_message(user_id="u2")])
    assert outcome_of(lambda: compactor.compact(db, counter_store)) is None
    assert (compactor.backlog(counter_store), views(db)) == (0, 3)
    counter_store.delete(FENCE_KEY)
    assert outcome_of(lambda: compactor.rebuild(db, counter_store, SITE, DAY.first_day, DAY.last_day)) is None
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)


def test_a_stalled_holder_cannot_overwrite_a_newer_holder_that_drew_the_same_fence(
    db, counter_store, monkeypatch
):
    """After a failover to a replica that missed the last increment, the newer holder draws the
    fence of the stalled one: a fence no larger let the stalled holder's rollups replace its."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [make_message(user_id="u1")])

    def a_failover_then_another_compactor_takes_the_shard():
        counter_store.decr(FENCE_KEY)  # the stalled holder's increment of the counter is lost
        store_batch(db, counter_store, "b2", [make_message(user_id="u2")])
        compactor.compact(db, counter_store)  # a newer holder, same fence

    error = compact_with_a_stall_before_the_first_write(
        db, counter_store, monkeypatch, a_failover_then_another_compactor_takes_the_shard
    )
    assert views(db) == 3
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)
    assert isinstance(error, LockNotOwnedError)


def test_a_stalled_holder_cannot_bring_back_a_rollup_a_rebuild_emptied(db, counter_store, monkeypatch):
    """A rebuild deleted the rollups that counted nothing any more; a holder that stalled
    before writing them then inserted them again, with the events the rebuild had removed."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [make_message(user_id="u1")])

    def the_site_s_events_are_removed_and_its_rollups_rebuilt():
        db[event_store.EVENTS].delete_many({"site_id": SITE})  # the operator removes the site's spam
        compactor.rebuild(db, counter_store, SITE, DAY.first_day, DAY.last_day)

    error = compact_with_a_stall_before_the_first_write(
        db, counter_store, monkeypatch, the_site_s_events_are_removed_and_its_rollups_rebuilt
    )
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)
    assert views(db) == 0
    assert isinstance(error, LockNotOwnedError)


def test_a_rebuild_that_lost_its_lock_leaves_an_old_batch_s_late_delta_to_count(
    db, counter_store, monkeypatch
):
    """A rebuild marked an old batch whose delta was lost as counted, then lost its lock before
    writing its rollups; the batch's delta, arriving late, was skipped by the newer holder as
    marked: the batch counted nowhere."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    compactor.compact(db, counter_store)
    late = [make_message(user_id="u1")]
    event_store.insert_events(db, late, "late")  # stored; its delta not appended (yet)
    db[event_store.EVENTS].update_many(
        {"batch_id": "late"}, {"$set": {"created_at": datetime.now(UTC) - 2 * compactor.ORPHAN_AGE}}
    )
    tallies = compactor.bucket_tallies

    def stall_after_the_raw_read(*args, **kwargs):
        counter_store.delete(LOCK_KEY)  # the rebuild's lock expired
        store_batch(db, counter_store, "late", late)  # the batch's delta arrives after all
        compactor.compact(db, counter_store)  # a newer holder takes the shard
        return tallies(*args, **kwargs)

    monkeypatch.setattr(compactor, "bucket_tallies", stall_after_the_raw_read)
    with pytest.raises(LockNotOwnedError):
        compactor.rebuild(db, counter_store, SITE, DAY.first_day, DAY.last_day)
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert views(db) == 2
    assert summary(db, DAY, 10) == summary_from_pipeline(db, DAY, 10)
