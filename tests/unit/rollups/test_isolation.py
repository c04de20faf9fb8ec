"""A round that fails on the servers is tried again whole, setting nothing aside; one that
fails on a document the server refuses is isolated, and what is set aside is replayed."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from pymongo.errors import BulkWriteError, DocumentTooLarge, OperationFailure

from app.rollups import compactor
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary
from tasks.persist import store_batch
from tools.factories import make_message

SITE = "site-abc-123"
DAY = Period(SITE, date(2025, 11, 15), date(2025, 11, 15), ZoneInfo("UTC"))
TOO_LARGE = 10334  # BSONObjectTooLarge


def views(db, period):
    return summary(db, period, 10).total_views


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
