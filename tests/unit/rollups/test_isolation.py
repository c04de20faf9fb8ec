"""A round that fails for a reason of one entry's own is isolated entry by entry, and what is
set aside is replayed later; neither may count an event twice or lose one, however much of
the round was saved before it failed. Server conditions that pass are no such reason."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, DocumentTooLarge, OperationFailure

from app.rollups import compactor
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

    assert compactor.replay_set_aside(counter_store) == 1  # before the fault is fixed: refused again
    compactor.compact(db, counter_store)
    assert (views(db, DAY), views(db, WEEK), compactor.set_aside(counter_store)) == (2, 1, 1)

    monkeypatch.undo()  # the fault is fixed
    compactor.replay_set_aside(counter_store)
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

    compactor.replay_set_aside(counter_store)
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
    compactor.replay_set_aside(counter_store)
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
    compactor.replay_set_aside(counter_store)
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
    compactor.replay_set_aside(counter_store)
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
