"""Rollups stay exact: redelivered batches, retried events, a compactor stopped halfway,
rebuilds. On mongomock and an in-memory Redis; tests/integration repeats it on real servers."""

import json
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pymongo.errors import AutoReconnect, DocumentTooLarge

from app.rollups import compactor, user_ids
from app.rollups.tally import Tally
from app.store import events as event_store
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tasks import maintenance
from tasks.persist import store_batch
from tools.factories import make_event, make_message

DAY = Period("site-abc-123", date(2025, 11, 15), date(2025, 11, 15), ZoneInfo("UTC"))


def rollup_summary(db):
    return summary(db, DAY, 10)


def test_a_redelivered_batch_counts_once(db, counter_store):
    messages = [make_message(user_id=f"u{n}") for n in range(3)]
    store_batch(db, counter_store, "batch-1", messages)
    store_batch(db, counter_store, "batch-1", messages)  # redelivered: appended again
    assert compactor.backlog(counter_store) == 2
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "batch-1", messages)  # redelivered after compaction
    compactor.compact(db, counter_store)
    assert compactor.backlog(counter_store) == 0
    assert (rollup_summary(db).total_views, rollup_summary(db).unique_users) == (3, 3)


def test_users_are_numbered_once_a_round_and_entries_of_older_workers_still_count(db, counter_store):
    """Workers append users by name; entries appended before that carry the users' ids."""
    store_batch(db, counter_store, "batch-1", [make_message(user_id="u1"), make_message(user_id="u2")])
    store_batch(db, counter_store, "batch-2", [make_message(user_id="u2"), make_message(user_id="u3")])
    older = [make_message(user_id=user) for user in ("u1", "u4")]
    pipe = counter_store.pipeline()
    compactor.append_batch(
        pipe,
        "batch-3",
        user_ids.numbered(db, event_store.insert_events(db, older, "batch-3").documents),
    )
    pipe.execute()
    compactor.compact(db, counter_store)
    assert (rollup_summary(db).total_views, rollup_summary(db).unique_users) == (6, 4)
    assert rollup_summary(db) == summary_from_pipeline(db, DAY, 10)


def test_an_event_retried_in_another_batch_counts_once(db, counter_store):
    event = make_message()
    store_batch(db, counter_store, "batch-1", [event])
    store_batch(db, counter_store, "batch-2", [event, make_message()])
    compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 2


def test_a_batch_stored_halfway_then_redelivered_counts_each_event_once(db, counter_store):
    messages = [make_message() for _ in range(4)]
    event_store.insert_events(db, messages[:2], "batch-1")  # the worker died after the insert
    store_batch(db, counter_store, "batch-1", messages)
    compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 4


def test_a_compactor_stopped_after_writing_rollups_does_not_add_them_again(db, counter_store, monkeypatch):
    store_batch(
        db, counter_store, "batch-1", [make_message(), make_message(timestamp="2025-11-15T20:00:00Z")]
    )

    def crash(*args):
        raise AutoReconnect("the compactor lost MongoDB midway")

    with monkeypatch.context() as patch:
        patch.setattr(rollup_store, "mark_batches_applied", crash)
        with pytest.raises(AutoReconnect):
            compactor.compact(db, counter_store)
    assert compactor.backlog(counter_store) == 1  # the entry stays until the batch is marked
    compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 2
    assert rollup_summary(db) == summary_from_pipeline(db, DAY, 10)


def test_only_one_compactor_works_at_a_time_on_a_shard(db, counter_store):
    store_batch(db, counter_store, "batch-1", [make_message()])
    lock = counter_store.lock(f"{compactor.LOCK_PREFIX}:{compactor.shard_of('site-abc-123')}", timeout=5)
    assert lock.acquire(blocking=False)
    assert compactor.compact(db, counter_store) == 0
    lock.release()
    assert compactor.compact(db, counter_store) == 1


def test_rebuild_recomputes_damaged_rollups_from_the_raw_events(db, counter_store, store):
    store([make_event(user_id=f"u{n}", path=f"/p{n % 2}") for n in range(5)])
    db[rollup_store.ROLLUPS].update_many({}, {"$set": {"events": 0, "tally": Tally().pack()}})
    assert rollup_summary(db).total_views == 0
    assert compactor.rebuild(db, counter_store, "site-abc-123", date(2025, 11, 15), date(2025, 11, 15)) == 5
    assert rollup_summary(db) == summary_from_pipeline(db, DAY, 10)


def test_rebuild_counts_an_old_batch_whose_delta_was_lost_and_leaves_young_ones_to_theirs(db, counter_store):
    lost = [make_message(), make_message()]
    event_store.insert_events(db, lost, "lost-batch")  # stored, but its delta never appended
    db[event_store.EVENTS].update_many({}, {"$set": {"created_at": datetime.now(UTC) - timedelta(hours=2)}})
    young = [make_message()]
    event_store.insert_events(db, young, "young-batch")  # stored; its delta is yet to be appended
    compactor.rebuild(db, counter_store, "site-abc-123", date(2025, 11, 15), date(2025, 11, 15))
    assert rollup_summary(db).total_views == 2
    store_batch(db, counter_store, "young-batch", young)
    store_batch(db, counter_store, "lost-batch", lost)  # a late redelivery: rebuild counted it
    compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 3
    assert rollup_summary(db) == summary_from_pipeline(db, DAY, 10)


def test_the_rebuild_command_reports_what_it_counted(ingestion_app, store, migrated):
    store([make_event(), make_event(timestamp="2025-11-16T10:00:00Z")])
    runner = ingestion_app.test_cli_runner()
    result = runner.invoke(
        args=["rebuild-rollups", "--site-id", "site-abc-123", "--start", "2025-11-15", "--end", "2025-11-16"]
    )
    assert result.exit_code == 0, result.output
    assert "2 events" in result.output
    backwards = runner.invoke(
        args=["rebuild-rollups", "--site-id", "s", "--start", "2025-11-16", "--end", "2025-11-15"]
    )
    assert backwards.exit_code != 0


def test_a_batch_stored_while_a_rebuild_runs_is_counted_once(db, counter_store, monkeypatch):
    store_batch(db, counter_store, "before", [make_message()])
    drain = compactor._drain

    def drain_then_a_worker_stores_a_batch(*args):
        consumed = drain(*args)
        store_batch(db, counter_store, "during", [make_message()])
        return consumed

    monkeypatch.setattr(compactor, "_drain", drain_then_a_worker_stores_a_batch)
    compactor.rebuild(db, counter_store, "site-abc-123", date(2025, 11, 15), date(2025, 11, 15))
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 2


def test_the_compactor_rests_longer_after_a_long_round_while_messages_wait():
    assert maintenance.rest_after(0.01, interval=0.5, queue_waiting=True) == 0.5
    assert maintenance.rest_after(2.0, interval=0.5, queue_waiting=True) == 6.0


def test_the_compactor_rests_only_the_interval_when_no_message_waits():
    assert maintenance.rest_after(2.0, interval=0.5, queue_waiting=False) == 0.5


def test_the_compactor_rests_the_rule_s_time_while_messages_wait():
    checks = []

    def queue_waiting():
        checks.append(True)
        return True

    interval = 1 / 64  # binary fractions: the count of checks is exact
    assert maintenance.rest(threading.Event(), 2 * interval, interval, queue_waiting)
    assert len(checks) == 6  # three times the round, checked every interval


def test_the_compactor_s_rest_ends_once_the_queue_is_empty():
    """After a long round the rule would rest minutes; the backlog must not wait for an
    empty queue."""
    answers = iter([True, True, False])
    started = time.monotonic()
    assert maintenance.rest(threading.Event(), 100.0, 0.01, lambda: next(answers))
    assert time.monotonic() - started < 5


def test_the_compactor_s_rest_ends_when_the_worker_stops():
    stopping = threading.Event()
    stopping.set()
    assert not maintenance.rest(stopping, 0.0, 0.01, lambda: False)


def test_a_compaction_ends_with_the_batches_waiting_when_it_began(db, counter_store, monkeypatch):
    store_batch(db, counter_store, "batch-1", [make_message()])
    mark = rollup_store.mark_batches_applied

    def mark_while_a_worker_appends(database, batch_ids):
        mark(database, batch_ids)
        if any(batch_id.startswith("batch-1@") for batch_id in batch_ids):
            store_batch(db, counter_store, "batch-2", [make_message()])

    with monkeypatch.context() as patch:
        patch.setattr(rollup_store, "mark_batches_applied", mark_while_a_worker_appends)
        assert compactor.compact(db, counter_store) == 1
    assert compactor.backlog(counter_store) == 1  # appended during the round: the next one's
    assert compactor.compact(db, counter_store) == 1
    assert rollup_summary(db).total_views == 2


def test_rebuilding_a_day_rebuilds_its_whole_week(db, counter_store, store):
    store([make_event(timestamp=f"2025-11-{day}T12:00:00Z", user_id=f"u{day}") for day in (10, 15)])
    db[rollup_store.ROLLUPS].update_many({}, {"$set": {"events": 0, "tally": Tally().pack()}})
    assert compactor.rebuild(db, counter_store, "site-abc-123", date(2025, 11, 15), date(2025, 11, 15)) == 2
    week = Period("site-abc-123", date(2025, 11, 10), date(2025, 11, 16), ZoneInfo("UTC"))  # Monday to Sunday
    assert summary(db, week, 10) == summary_from_pipeline(db, week, 10)
    assert summary(db, week, 10).unique_users == 2


def sites_in_different_shards(count):
    sites, shards = [], set()
    for n in range(1000):
        site_id = f"site-{n}"
        if compactor.shard_of(site_id) not in shards:
            shards.add(compactor.shard_of(site_id))
            sites.append(site_id)
        if len(sites) == count:
            return sites
    raise AssertionError("not enough shards")


def test_a_locked_shard_does_not_hold_up_the_others(db, counter_store):
    busy, free = sites_in_different_shards(2)
    store_batch(db, counter_store, "batch-1", [make_message(site_id=busy), make_message(site_id=free)])
    lock = counter_store.lock(f"{compactor.LOCK_PREFIX}:{compactor.shard_of(busy)}", timeout=5)
    assert lock.acquire(blocking=False)
    assert compactor.compact(db, counter_store) == 1  # the free site's entry
    assert summary(db, Period(free, DAY.first_day, DAY.last_day, DAY.tz), 10).total_views == 1
    assert summary(db, Period(busy, DAY.first_day, DAY.last_day, DAY.tz), 10).total_views == 0
    lock.release()
    assert compactor.compact(db, counter_store) == 1
    assert summary(db, Period(busy, DAY.first_day, DAY.last_day, DAY.tz), 10).total_views == 1


def store_six_batches_over_one_day(db, counter_store):
    """18 quarter hour and 18 hour rollups, one day's and one week's: 38 in all."""
    for batch in range(6):  # each batch touches 3 quarters of 3 hours of a day, its day and week
        hours = [f"2025-11-15T{batch * 3 + hour:02d}:00:00Z" for hour in range(3)]
        store_batch(db, counter_store, f"batch-{batch}", [make_message(timestamp=t) for t in hours])


def test_a_wide_backlog_is_added_a_bounded_part_at_a_time_each_keeping_its_progress(
    db, counter_store, monkeypatch
):
    """However many rollups a backlog touches, a round holds a bounded part of them and saves
    it before reading the next, so a compactor that dies later keeps what it saved."""
    monkeypatch.setattr(compactor, "BUCKETS_PER_ROUND", 10)
    monkeypatch.setattr(compactor, "ROLLUPS_PER_SLICE", 3)
    store_six_batches_over_one_day(db, counter_store)
    read_before_saving: list[str] = []
    saved: list[str] = []
    read, save = rollup_store.rollup_documents, rollup_store.save_rollups

    def recorded_read(database, ids):
        ids = list(ids)
        if not saved:
            read_before_saving.extend(ids)
        return read(database, ids)

    def save_then_die_in_the_second_part(database, documents, new, **options):
        if len(saved) >= 10:
            raise AutoReconnect("the compactor lost MongoDB midway")
        saved.extend(document["_id"] for document in documents)
        save(database, documents, new, **options)

    with monkeypatch.context() as patch:
        patch.setattr(rollup_store, "rollup_documents", recorded_read)
        patch.setattr(rollup_store, "save_rollups", save_then_die_in_the_second_part)
        with pytest.raises(AutoReconnect):
            compactor.compact(db, counter_store)
    assert len(read_before_saving) == 10  # of the 38 rollups the backlog touches
    assert compactor.backlog(counter_store) == 6
    assert sorted(db[rollup_store.ROLLUPS].distinct("_id")) == sorted(saved)  # the first part
    compactor.compact(db, counter_store)
    assert rollup_summary(db) == summary_from_pipeline(db, DAY, 10)
    assert rollup_summary(db).total_views == 18


def test_a_backlog_wider_than_a_part_writes_each_rollup_once(db, counter_store, monkeypatch):
    """Taking only the entries whose rollups fit in memory made each later round rewrite the
    day's and week's rollups again: a wide import's rounds rewrote thousands for a few entries."""
    monkeypatch.setattr(compactor, "BUCKETS_PER_ROUND", 10)
    store_six_batches_over_one_day(db, counter_store)
    writes: list[str] = []
    save = rollup_store.save_rollups

    def counted(database, documents, new, **options):
        writes.extend(document["_id"] for document in documents)
        save(database, documents, new, **options)

    monkeypatch.setattr(rollup_store, "save_rollups", counted)
    assert compactor.compact(db, counter_store) == 6
    assert len(writes) == len(set(writes)) == 38
    assert rollup_summary(db).total_views == 18


def test_copies_of_one_new_event_in_one_batch_count_once(db, counter_store):
    copies = [make_message(event_id="0b8f4a52-5c0e-4e39-9d7e-3f1a2b6c7d8e")] * 500
    store_batch(db, counter_store, "batch-1", copies)
    store_batch(db, counter_store, "batch-1", copies)  # and redelivered
    compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 1
    assert rollup_summary(db) == summary_from_pipeline(db, DAY, 10)


def test_an_entry_that_cannot_be_added_is_set_aside_and_the_rest_go_on(db, counter_store, monkeypatch):
    """A rollup write the server refuses for good (a document too large) stops no other site."""
    poison, healthy = sites_in_same_shard(2)
    for n, site_id in enumerate([healthy, poison, healthy]):
        store_batch(db, counter_store, f"batch-{n}", [make_message(site_id=site_id)])
    save = rollup_store.save_rollups

    def refuse_the_poison_site(database, documents, new, **options):
        if any(document["site_id"] == poison for document in documents):
            raise DocumentTooLarge("BSON document too large")
        save(database, documents, new, **options)

    monkeypatch.setattr(rollup_store, "save_rollups", refuse_the_poison_site)
    assert compactor.compact(db, counter_store) == 3
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (0, 1)
    assert site_views(db, healthy) == 2
    monkeypatch.undo()  # the fault is fixed
    assert compactor.replay_set_aside(db, counter_store) == 1
    compactor.compact(db, counter_store)
    assert (site_views(db, poison), compactor.set_aside(counter_store)) == (1, 0)


def test_rollups_found_absent_are_saved_as_new_and_the_others_not(db, counter_store, monkeypatch):
    saved = []
    save = rollup_store.save_rollups

    def recorded(database, documents, new, **options):
        saved.append(({document["_id"] for document in documents}, set(new)))
        save(database, documents, new, **options)

    monkeypatch.setattr(rollup_store, "save_rollups", recorded)
    store_batch(db, counter_store, "batch-1", [make_message(site_id="site-1")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "batch-2", [make_message(site_id="site-1")])
    compactor.compact(db, counter_store)
    (first_ids, first_new), (second_ids, second_new) = saved
    assert len(first_ids) == 4  # the quarter, the hour, the day and the week
    assert (first_new, second_ids, second_new) == (first_ids, first_ids, set())
    assert site_views(db, "site-1") == 2


def test_a_server_away_sets_nothing_aside(db, counter_store, monkeypatch):
    store_batch(db, counter_store, "batch-1", [make_message()])

    def away(*args, **kwargs):
        raise AutoReconnect("connection refused")

    monkeypatch.setattr(rollup_store, "save_rollups", away)
    with pytest.raises(AutoReconnect):
        compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (1, 0)


def sites_in_same_shard(count):
    by_shard: dict[int, list[str]] = {}
    for n in range(1000):
        sites = by_shard.setdefault(compactor.shard_of(f"site-{n}"), [])
        sites.append(f"site-{n}")
        if len(sites) == count:
            return sites
    raise AssertionError("no shard holds enough sites")


def site_views(db, site_id):
    return summary(db, Period(site_id, DAY.first_day, DAY.last_day, DAY.tz), 10).total_views


def test_a_save_that_dies_after_some_slices_leaves_no_cached_answer_behind(
    db, counter_store, reporting, monkeypatch
):
    """The cache generation moved only after a whole save: the day's rollup saved, the save
    dying on the next slice, `/stats` answered from the cache for minutes."""
    url = f"/stats?site_id=site-abc-123&date={DAY.first_day.isoformat()}"
    store_batch(db, counter_store, "batch-1", [make_message()])
    compactor.compact(db, counter_store)
    assert reporting.get(url).get_json()["total_views"] == 1  # and cached
    store_batch(db, counter_store, "batch-2", [make_message()])
    monkeypatch.setattr(compactor, "ROLLUPS_PER_SLICE", 1)  # the day's, the hour's, the week's
    save = rollup_store.save_rollups
    saves = []

    def die_on_the_second_slice(*args, **kwargs):
        saves.append(True)
        if len(saves) == 2:
            raise AutoReconnect("the compactor lost MongoDB midway")
        return save(*args, **kwargs)

    monkeypatch.setattr(rollup_store, "save_rollups", die_on_the_second_slice)
    with pytest.raises(AutoReconnect):
        compactor.compact(db, counter_store)
    assert rollup_summary(db).total_views == 2  # the day's rollup was saved
    assert reporting.get(url).get_json()["total_views"] == 2


def test_a_shard_that_fails_does_not_stop_the_others(db, counter_store, monkeypatch):
    """A shard whose round fails (here for good) used to end the call: the shards after it in
    that call's order waited, every call, and their streams grew until ingestion refused events."""
    stuck, healthy = sites_in_different_shards(2)
    store_batch(db, counter_store, "batch-1", [make_message(site_id=stuck), make_message(site_id=healthy)])
    save = rollup_store.save_rollups

    def away_for_the_stuck_site(database, documents, new, **options):
        if any(document["site_id"] == stuck for document in documents):
            raise AutoReconnect("connection refused")
        save(database, documents, new, **options)

    monkeypatch.setattr(rollup_store, "save_rollups", away_for_the_stuck_site)
    monkeypatch.setattr(compactor.random, "randrange", lambda shards: compactor.shard_of(stuck))  # first
    with pytest.raises(AutoReconnect):
        compactor.compact(db, counter_store)
    assert (site_views(db, stuck), site_views(db, healthy), compactor.backlog(counter_store)) == (0, 1, 1)


MALFORMED = {
    "deltas not JSON": {"batch": "batch-1@0", "deltas": "{"},
    "deltas not a list": {"batch": "batch-1@0", "deltas": '{"site_id": "site-abc-123"}'},
    "a delta without its hour": {
        "batch": "batch-1@0",
        "deltas": '[{"site_id": "site-abc-123", "types": []}]',
    },
    "an hour that is no time": {
        "batch": "batch-1@0",
        "deltas": '[{"site_id": "site-abc-123", "hour": "noon", "types": []}]',
    },
    "no batch": {"deltas": "[]"},
    "a share's rollups not JSON": {"batch": "batch-1@0/1-0", "of": "batch-1@0", "deltas": "[]", "only": "["},
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_entry_is_set_aside_and_the_rest_go_on(db, counter_store, fields):
    """An entry the compactor cannot read raised out of its round, every round: its shard stalled."""
    shard = compactor.shard_of("site-abc-123")
    counter_store.xadd(compactor.stream_key(shard), fields)
    store_batch(db, counter_store, "batch-2", [make_message()])
    assert compactor.compact(db, counter_store) == 2
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (0, 1)
    assert rollup_summary(db).total_views == 1


def test_an_hourly_delta_of_the_previous_release_adds_into_its_hour_day_and_week(db, counter_store):
    """Entries appended before the upgrade name an hour, not a quarter: taken as a quarter,
    the hour's events would all count in its first quarter."""
    delta = {
        "site_id": "site-abc-123",
        "hour": "2025-11-15T10:00:00+00:00",
        "types": [{"event_type": "page_view", "events": 2, "users": ["ann"], "paths": [["/", 2]]}],
    }
    counter_store.xadd(
        compactor.stream_key(compactor.shard_of("site-abc-123")),
        {"batch": "old@0", "deltas": json.dumps([delta])},
    )
    compactor.compact(db, counter_store)
    assert sorted(db[rollup_store.ROLLUPS].distinct("_id")) == [
        "site-abc-123|day|2025-11-15",
        "site-abc-123|hour|2025-11-15T10",
        "site-abc-123|week|2025-11-10",
    ]
    assert rollup_summary(db).total_views == 2
