"""A round that fails for a reason of one entry's own is isolated entry by entry, and what is
set aside is replayed later; neither may count an event twice or lose one, however much of
the round was saved before it failed. Server conditions that pass are no such reason."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, DocumentTooLarge, OperationFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockNotOwnedError

from app.rollups import compactor, shares
from app.rollups.buckets import Bucket
from app.rollups.caps import DEFAULT_CAPS
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tasks.persist import store_batch
from tools.factories import make_message

SITE = "site-abc-123"
DAY = Period(SITE, date(2025, 11, 15), date(2025, 11, 15), ZoneInfo("UTC"))
WEEK = Period(SITE, date(2025, 11, 10), date(2025, 11, 16), ZoneInfo("UTC"))  # Monday to Sunday
TOO_LARGE = 10334  # BSONObjectTooLarge


def views(db, period):
    return summary(db, period, 10).total_views


def assert_rollups_agree_with_the_raw_events(db, *periods):
    for period in periods:
        assert summary(db, period, 10) == summary_from_pipeline(db, period, 10)


def refusing_weeks_from(events, save):
    """`save_rollups` as a server that refuses a week's rollup once it counts `events`: it
    stores the other documents of the write and reports the week's as refused."""

    def save_refusing(database, documents, *args, **kwargs):
        refused = [
            document for document in documents if document["level"] == "week" and document["events"] >= events
        ]
        save(database, [document for document in documents if document not in refused], *args, **kwargs)
        if refused:
            raise BulkWriteError(
                {
                    "writeErrors": [
                        {"index": documents.index(document), "code": TOO_LARGE, "errmsg": "object too large"}
                        for document in refused
                    ],
                    "writeConcernErrors": [],
                    "nInserted": 0,
                }
            )

    return save_refusing


def store_two_batches_in_one_site_hour(db, counter_store):
    """Store batches b0 and b1 of one event each; return b1's messages."""
    store_batch(db, counter_store, "b0", [make_message(user_id="u0")])
    second = [make_message(user_id="u1")]
    store_batch(db, counter_store, "b1", second)
    return second


def test_a_round_saved_in_part_then_isolated_counts_each_event_once(db, counter_store, monkeypatch):
    """The issue's scenario: the round's hour and day are saved holding b0 and b1, the week
    is refused; adding b0 alone then rewrote them with `through` at b0, so b1 counted again."""
    store_two_batches_in_one_site_hour(db, counter_store)
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (0, 1)
    assert (views(db, DAY), views(db, WEEK)) == (2, 1)

    assert compactor.replay_set_aside(db, counter_store) == 1  # before the fault is fixed: refused again
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.set_aside(counter_store)) == (2, 1, 1)

    monkeypatch.undo()  # the fault is fixed
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.set_aside(counter_store)) == (2, 2, 0)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def test_a_replayed_entry_counts_in_a_rollup_whose_through_moved_past_it(db, counter_store, monkeypatch):
    """The week refused b1, then took a later batch: replayed, b1 still goes into the week,
    and still not into the hour and day that held it all along."""
    store_two_batches_in_one_site_hour(db, counter_store)
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    compactor.compact(db, counter_store)
    monkeypatch.undo()
    store_batch(db, counter_store, "b2", [make_message(user_id="u2", timestamp="2025-11-13T09:00:00Z")])
    compactor.compact(db, counter_store)
    assert views(db, WEEK) == 2  # b0 and b2: the week's `through` is past b1's entry now

    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK)) == (2, 3)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def test_a_batch_delivered_again_after_its_entry_was_set_aside_counts_once(db, counter_store, monkeypatch):
    second = store_two_batches_in_one_site_hour(db, counter_store)
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", second)  # redelivered: appended again
    compactor.compact(db, counter_store)
    assert views(db, DAY) == 2

    monkeypatch.undo()
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK)) == (2, 2)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def test_a_rebuild_counts_a_partly_added_batch_where_it_was_added_and_leaves_the_rest_to_the_replay(
    db, counter_store, monkeypatch
):
    store_two_batches_in_one_site_hour(db, counter_store)
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    compactor.compact(db, counter_store)
    compactor.rebuild(db, counter_store, SITE, DAY.first_day, DAY.last_day)
    assert (views(db, DAY), views(db, WEEK)) == (2, 1)

    monkeypatch.undo()
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.set_aside(counter_store)) == (2, 2, 0)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def failing_once(error, save):
    calls = []

    def save_failing_once(*args, **kwargs):
        calls.append(True)
        if len(calls) == 1:
            raise error
        return save(*args, **kwargs)

    return save_failing_once


WRITE_CONCERN_TIMED_OUT = {"code": 64, "errmsg": "waiting for replication timed out"}

SERVER_CONDITIONS = {
    "write conflict": OperationFailure("WriteConflict", code=112),
    "not writable primary": OperationFailure("not primary", code=10107),
    "FerretDB's storage failing": OperationFailure("database is locked (SQLITE_BUSY)", code=1),
    "transient transaction": OperationFailure(
        "aborted", code=251, details={"errorLabels": ["TransientTransactionError"]}
    ),
    "retryable write": OperationFailure("retry", code=9999, details={"errorLabels": ["RetryableWriteError"]}),
    "write concern only": BulkWriteError(
        {"writeErrors": [], "writeConcernErrors": [WRITE_CONCERN_TIMED_OUT], "nInserted": 3}
    ),
    "write conflict in a bulk write": BulkWriteError(
        {"writeErrors": [{"index": 0, "code": 112, "errmsg": "WriteConflict"}], "writeConcernErrors": []}
    ),
}


@pytest.mark.parametrize("error", SERVER_CONDITIONS.values(), ids=SERVER_CONDITIONS.keys())
def test_a_server_condition_that_passes_sets_nothing_aside(db, counter_store, monkeypatch, error):
    store_batch(db, counter_store, "b0", [make_message()])
    monkeypatch.setattr(rollup_store, "save_rollups", failing_once(error, rollup_store.save_rollups))
    with pytest.raises(type(error)):
        compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (1, 0)
    compactor.compact(db, counter_store)
    assert views(db, DAY) == 1


@pytest.mark.parametrize("error", SERVER_CONDITIONS.values(), ids=SERVER_CONDITIONS.keys())
def test_a_server_condition_while_marking_batches_sets_nothing_aside(db, counter_store, monkeypatch, error):
    store_batch(db, counter_store, "b0", [make_message()])
    monkeypatch.setattr(
        rollup_store, "mark_batches_applied", failing_once(error, rollup_store.mark_batches_applied)
    )
    with pytest.raises(type(error)):
        compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (1, 0)
    compactor.compact(db, counter_store)
    assert views(db, DAY) == 1


REFUSALS = {
    "too large for the driver": DocumentTooLarge("BSON document too large"),
    "too large for the server": BulkWriteError(
        {
            "writeErrors": [{"index": 0, "code": TOO_LARGE, "errmsg": "object too large"}],
            "writeConcernErrors": [],
        }
    ),
    "a value the server refuses": OperationFailure("invalid key", code=2),
}


@pytest.mark.parametrize("error", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_document_the_server_refuses_is_set_aside_and_replayed_once_fixed(
    db, counter_store, monkeypatch, error
):
    store_batch(db, counter_store, "b0", [make_message()])

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(rollup_store, "save_rollups", refuse)
    compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (0, 1)
    monkeypatch.undo()
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), compactor.set_aside(counter_store)) == (1, 0)


def test_a_server_away_while_isolating_leaves_the_entries_in_place(db, counter_store, monkeypatch):
    store_two_batches_in_one_site_hour(db, counter_store)
    refusing = refusing_weeks_from(2, rollup_store.save_rollups)
    calls = []

    def refuse_then_go_away(*args, **kwargs):
        calls.append(True)
        if len(calls) > 1:
            raise AutoReconnect("connection refused")
        return refusing(*args, **kwargs)

    monkeypatch.setattr(rollup_store, "save_rollups", refuse_then_go_away)
    with pytest.raises(AutoReconnect):
        compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (2, 0)
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK)) == (2, 2)


def marking_failing_for(batch_id, mark):
    """`mark_batches_applied` as a server that steps down when asked to mark `batch_id` alone."""

    def mark_failing(database, batch_ids):
        batch_ids = list(batch_ids)
        if batch_ids == [compactor.marker(batch_id, compactor.shard_of(SITE))]:
            raise AutoReconnect("primary stepped down while marking")
        return mark(database, batch_ids)

    return mark_failing


def set_aside_b1_s_share_then_fail_to_mark_b1(db, counter_store, monkeypatch):
    """The week refuses b1; b1's share is set aside, then marking b1 fails; then the faults pass."""
    store_two_batches_in_one_site_hour(db, counter_store)
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    monkeypatch.setattr(
        rollup_store, "mark_batches_applied", marking_failing_for("b1", rollup_store.mark_batches_applied)
    )
    with pytest.raises(AutoReconnect):
        compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (2, 1)
    monkeypatch.undo()


def test_a_share_set_aside_whose_batch_could_not_be_marked_counts_once(db, counter_store, monkeypatch):
    """The share was written, the marker not: the next round added b1 whole into the week,
    and the share, replayed, added it there again."""
    set_aside_b1_s_share_then_fail_to_mark_b1(db, counter_store, monkeypatch)
    compactor.compact(db, counter_store)
    assert compactor.backlog(counter_store) == 0

    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.set_aside(counter_store)) == (2, 2, 0)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def test_a_share_replayed_before_its_batch_was_marked_counts_once(db, counter_store, monkeypatch):
    """The operator replays the share before the next round: b1's entry and its share then
    met in one round, and both were added into the week."""
    set_aside_b1_s_share_then_fail_to_mark_b1(db, counter_store, monkeypatch)
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.backlog(counter_store)) == (2, 2, 0)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def names(arguments):
    return [argument.encode() if isinstance(argument, str) else argument for argument in arguments]


def test_a_holder_whose_lock_expired_sets_no_share_aside(db, counter_store, monkeypatch):
    """A holder checks its lock, stalls past the lock's expiry, then writes b1's share: a newer
    holder added b1 whole meanwhile, so the share, replayed, counted b1 in the week again."""
    store_two_batches_in_one_site_hour(db, counter_store)
    save, week_refused = rollup_store.save_rollups, refusing_weeks_from(2, rollup_store.save_rollups)
    fault_passed: list[bool] = []

    def save_refusing_until_the_fault_passed(*args, **kwargs):
        return (save if fault_passed else week_refused)(*args, **kwargs)

    execute_command = counter_store.execute_command

    def stall_before_the_share_lands(*args, **options):
        if not fault_passed and shares.SET_ASIDE_KEY.encode() in names(args):
            fault_passed.append(True)
            counter_store.delete(compactor.lock_key(compactor.shard_of(SITE)))  # expired
            compactor.compact(db, counter_store)  # a newer holder, the fault gone, adds b1 whole
        return execute_command(*args, **options)

    monkeypatch.setattr(rollup_store, "save_rollups", save_refusing_until_the_fault_passed)
    monkeypatch.setattr(counter_store, "execute_command", stall_before_the_share_lands)
    with pytest.raises(LockNotOwnedError):
        compactor.compact(db, counter_store)
    monkeypatch.undo()
    assert fault_passed
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.set_aside(counter_store)) == (2, 2, 0)
    assert_rollups_agree_with_the_raw_events(db, DAY, WEEK)


def test_an_entry_added_alone_rewrites_only_the_rollups_that_do_not_hold_it(db, counter_store, monkeypatch):
    """Isolating the round adds b0 alone: the quarter, hour and day hold it (saved with the round), so
    only the week is written again; rewriting the others moved their `through` back to b0."""
    store_two_batches_in_one_site_hour(db, counter_store)
    refusing = refusing_weeks_from(2, rollup_store.save_rollups)
    written: list[list[str]] = []

    def recorded(database, documents, *args, **kwargs):
        written.append(sorted(document["level"] for document in documents))
        return refusing(database, documents, *args, **kwargs)

    monkeypatch.setattr(rollup_store, "save_rollups", recorded)
    compactor.compact(db, counter_store)
    assert written == [["day", "hour", "quarter", "week"], ["week"], ["week"]]  # the round, b0, b1


def test_a_rollup_saved_never_records_an_earlier_entry_than_it_holds(db, counter_store):
    store_batch(db, counter_store, "b0", [make_message()])
    compactor.compact(db, counter_store)
    stored = db[rollup_store.ROLLUPS].find_one({"level": "day"})
    bucket = Bucket(stored["site_id"], stored["level"], stored["start"])
    rollup = compactor.Rollup.load(bucket, stored, DEFAULT_CAPS)
    assert rollup.document(compactor.NO_ENTRY, fence=1)["through"] == stored["through"]


def test_redis_failing_after_a_refused_write_does_not_hide_the_refusal(db, counter_store, monkeypatch):
    """The move of the cache generation after a refused write failed on Redis, and its error
    replaced the refusal: the round was then retried whole, forever, instead of isolated."""
    store_batch(db, counter_store, "b0", [make_message()])
    refused: list[bool] = []

    def refuse(*args, **kwargs):
        refused.append(True)
        raise DocumentTooLarge("BSON document too large")

    pipeline = counter_store.pipeline

    def the_next_pipeline_after_a_refusal_fails(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        if refused == [True]:
            refused.append(True)  # once

            def blink(*args, **kwargs):
                raise RedisConnectionError("Redis blinked")

            pipe.execute = blink
        return pipe

    monkeypatch.setattr(rollup_store, "save_rollups", refuse)
    monkeypatch.setattr(counter_store, "pipeline", the_next_pipeline_after_a_refusal_fails)
    compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (0, 1)


def set_aside_shares(db, counter_store, monkeypatch, count):
    """Set aside one share of each of `count` batches."""
    for n in range(count):
        store_batch(db, counter_store, f"b{n}", [make_message(user_id=f"u{n}")])

    def refuse(*args, **kwargs):
        raise DocumentTooLarge("BSON document too large")

    with monkeypatch.context() as patch:
        patch.setattr(rollup_store, "save_rollups", refuse)
        while compactor.backlog(counter_store):
            compactor.compact(db, counter_store)
    assert compactor.set_aside(counter_store) == count


def test_replaying_set_aside_shares_holds_a_bounded_page_of_them_at_a_time(db, counter_store, monkeypatch):
    set_aside_shares(db, counter_store, monkeypatch, 5)
    monkeypatch.setattr(shares, "SHARES_PER_PAGE", 2)
    xrange = counter_store.xrange
    read: list[int] = []

    def recorded(name, *args, **kwargs):
        rows = xrange(name, *args, **kwargs)
        if name == shares.SET_ASIDE_KEY:
            read.append(len(rows))
        return rows

    monkeypatch.setattr(counter_store, "xrange", recorded)
    assert compactor.replay_set_aside(db, counter_store) == 5
    assert read
    assert max(read) <= 2
    monkeypatch.undo()
    compactor.compact(db, counter_store)
    assert (views(db, DAY), compactor.set_aside(counter_store)) == (5, 0)


def test_a_rebuild_reads_no_set_aside_share_of_a_batch_it_does_not_count(db, counter_store, monkeypatch):
    """A rebuild read the whole set-aside stream, every share of every shard, to find those of
    the batches it counts."""
    set_aside_shares(db, counter_store, monkeypatch, 3)
    xrange = counter_store.xrange
    read: list[str] = []

    def recorded(name, *args, **kwargs):
        read.append(name)
        return xrange(name, *args, **kwargs)

    monkeypatch.setattr(counter_store, "xrange", recorded)
    compactor.rebuild(db, counter_store, "site-elsewhere", DAY.first_day, DAY.last_day)
    assert shares.SET_ASIDE_KEY not in read
