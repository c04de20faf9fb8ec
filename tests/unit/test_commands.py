"""Operator tools: the pipeline health check and replaying dead letters."""

import json
import time

import pytest

from app import commands
from app.queue import QUEUE, counters, ledger, publish
from app.queue.transport import PublishOutcomeUnknownError
from app.rollups import compactor
from app.store import dead_letters
from app.store import events as event_store
from tasks.persist import persist_events, store_batch
from tests.unit.queue.accepted import accept
from tools.factories import make_message


def count(client, kind, messages):
    """Count events as the ledger's scripts do (a recorded batch settled at once)."""
    pipe = client.pipeline()
    ledger.record(pipe, "batch", messages, counters.additions({kind: messages}))
    ledger.settle(pipe, "batch")
    pipe.execute()


def test_pipeline_health_reports_counts_dead_letters_and_the_queue(reporting, db, counter_store):
    count(counter_store, counters.ACCEPTED, [make_message(), make_message(), make_message()])
    count(counter_store, counters.PERSISTED, [make_message()])
    dead_letters.dead_letter(db, [(make_message(), "refused")], batch_id="batch-0")
    counter_store.lpush(QUEUE, json.dumps({"headers": {"enqueued_at": time.time() - 30}}))
    counter_store.lpush(QUEUE, json.dumps({"headers": {"enqueued_at": time.time()}}))
    body = reporting.get("/health/pipeline").get_json()
    assert body["status"] == "ok"
    assert body["events"] == {"accepted": 3, "persisted": 1, "repeated": 0, "dead": 1, "unaccounted": 1}
    assert body["queue"]["depth"] == 2
    assert 29 <= body["queue"]["oldest_age_seconds"] < 60


def test_pipeline_health_for_one_site_day(reporting, counter_store):
    count(counter_store, counters.ACCEPTED, [make_message(site_id="a"), make_message(site_id="b")])
    body = reporting.get("/health/pipeline?site_id=a&date=2025-11-15").get_json()
    assert body["events"]["accepted"] == 1
    assert body["queue"] == {"depth": 0, "unacknowledged": 0, "oldest_age_seconds": None}


def test_pipeline_health_rejects_a_malformed_site_day(reporting, counter_store):
    assert reporting.get("/health/pipeline?site_id=a&date=2025-02-30").status_code == 400


def test_replay_dead_requeues_every_dead_letter_and_removes_it(ingestion_app, db, counter_store):
    events = [make_message() for _ in range(5)]
    dead_letters.dead_letter(db, [(event, "refused") for event in events], batch_id="batch-0")
    result = ingestion_app.test_cli_runner().invoke(args=["replay-dead", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "Re-enqueued 5" in result.output
    assert dead_letters.count_dead_letters(db) == 0
    # Celery runs eagerly here, so the replayed events are stored at once.
    assert db[event_store.EVENTS].count_documents({}) == 5
    assert counters.totals(counter_store).accepted == 0


def test_replay_dead_keeps_the_letter_of_an_event_mongodb_refuses_again(
    ingestion_app, db, counter_store, monkeypatch
):
    """The worker runs inside the command (eagerly) and dead-letters the event again before
    the command removes what it replayed: the letter must survive."""
    event = make_message()
    dead_letters.dead_letter(db, [(event, "refused")], batch_id="batch-0")

    def refuse_again(db, messages, batch_id=None):
        return event_store.InsertOutcome(rejected=[(message, "refused again") for message in messages])

    monkeypatch.setattr(event_store, "insert_events", refuse_again)
    result = ingestion_app.test_cli_runner().invoke(args=["replay-dead"])
    assert result.exit_code == 0, result.output
    [letter] = list(dead_letters.dead_letters(db))
    assert letter["event"] == event
    assert letter["error"] == "refused again"


def test_replay_dead_stops_keeping_the_letters_of_a_batch_the_queue_did_not_confirm(
    ingestion_app, db, counter_store, monkeypatch
):
    dead_letters.dead_letter(db, [(make_message(), "refused") for _ in range(3)], batch_id="batch-0")

    def unconfirmed(messages, **kwargs):
        raise PublishOutcomeUnknownError("no reply from Redis to the enqueue")

    monkeypatch.setattr(commands, "enqueue_events", unconfirmed)
    result = ingestion_app.test_cli_runner().invoke(args=["replay-dead"])
    assert result.exit_code == 1
    assert "run it again" in result.output
    assert dead_letters.count_dead_letters(db) == 3


def test_pipeline_health_gives_the_lag_of_the_oldest_event_stats_do_not_count_yet(
    reporting, db, counter_store
):
    assert reporting.get("/health/pipeline").get_json()["lag_seconds"] == 0
    pipe = counter_store.pipeline()
    ledger.record(pipe, "queued-batch", [make_message()])
    pipe.execute()
    counter_store.zadd(ledger.ORDER_KEY, {"queued-batch": time.time() - 40})  # accepted 40 s ago
    assert 40 <= reporting.get("/health/pipeline").get_json()["lag_seconds"] < 60
    store_batch(db, counter_store, "queued-batch", [make_message()])  # stored, not yet in rollups
    assert 0 <= reporting.get("/health/pipeline").get_json()["lag_seconds"] < 5
    compactor.compact(db, counter_store)
    assert reporting.get("/health/pipeline").get_json()["lag_seconds"] == 0


def replay_queued(app, *args):
    """Run replay-dead with no worker: the batch ids it queued, in order."""
    sent = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "publish", lambda messages, batch_id: sent.append((batch_id, list(messages))))
        result = app.test_cli_runner().invoke(args=["replay-dead", *args])
    assert result.exit_code == 0, result.output
    return sent


def deliver(app, batches):
    """A worker stores each batch."""
    with app.app_context():
        for batch_id, messages in batches:
            persist_events.apply([messages], task_id=batch_id)


def test_replay_dead_only_queues_and_the_worker_that_stores_an_event_removes_its_letter(
    ingestion_app, db, counter_store, reporting
):
    """The command deletes nothing: a letter leaves only once its event is stored."""
    events = [make_message() for _ in range(3)]
    dead_letters.dead_letter(db, [(event, "refused") for event in events], batch_id="batch-0")
    queued = replay_queued(ingestion_app, "--batch-size", "2")
    assert [len(messages) for _, messages in queued] == [2, 1]
    assert dead_letters.count_dead_letters(db) == 3
    deliver(ingestion_app, queued)
    assert dead_letters.count_dead_letters(db) == 0
    assert db[event_store.EVENTS].count_documents({}) == 3


def test_letters_replayed_twice_before_a_worker_ran_are_stored_once_and_counted_once(
    ingestion_app, db, counter_store, reporting
):
    """An operator runs replay-dead again (as it says to when the queue did not confirm)."""
    events = [make_message(), make_message()]
    batch_id = accept(events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(event_store, "insert_events", refuse_all)
        deliver(ingestion_app, [(batch_id, events)])
    queued = replay_queued(ingestion_app) + replay_queued(ingestion_app)
    deliver(ingestion_app, queued)
    assert db[event_store.EVENTS].count_documents({}) == 2
    events_health = reporting.get("/health/pipeline").get_json()["events"]
    assert events_health == {"accepted": 2, "persisted": 2, "repeated": 0, "dead": 0, "unaccounted": 0}


def test_replaying_the_letter_of_an_event_a_client_retry_stored_counts_the_first_copy_as_repeated(
    ingestion_app, db, counter_store, reporting
):
    event = make_message()
    first = accept([event])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(event_store, "insert_events", refuse_all)
        deliver(ingestion_app, [(first, [event])])
    deliver(ingestion_app, [(accept([event]), [event])])  # the retry, stored this time
    deliver(ingestion_app, replay_queued(ingestion_app))
    assert dead_letters.count_dead_letters(db) == 0
    events_health = reporting.get("/health/pipeline").get_json()["events"]
    assert events_health == {"accepted": 2, "persisted": 1, "repeated": 1, "dead": 0, "unaccounted": 0}


def refuse_all(db, messages, batch_id=None):
    return event_store.InsertOutcome(rejected=[(message, "refused") for message in messages])


def test_a_replay_finding_events_another_replay_stored_counts_nothing_for_them(
    ingestion_app, db, counter_store, reporting, monkeypatch
):
    """The first replay stored the events, then its worker died before removing their letters;
    the second removes them, but the first counts the events when it comes back."""
    events = [make_message(), make_message()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(event_store, "insert_events", refuse_all)
        deliver(ingestion_app, [(accept(events), events)])
    first, second = replay_queued(ingestion_app) + replay_queued(ingestion_app)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dead_letters, "remove", killed)
        with pytest.raises(SystemExit):
            deliver(ingestion_app, [first])
    deliver(ingestion_app, [second, first])
    assert dead_letters.count_dead_letters(db) == 0
    events_health = reporting.get("/health/pipeline").get_json()["events"]
    assert events_health == {"accepted": 2, "persisted": 2, "repeated": 0, "dead": 0, "unaccounted": 0}


def test_replaying_a_letter_its_own_batch_stored_the_event_of_counts_nothing(
    ingestion_app, db, counter_store, reporting
):
    """A letter left behind by the batch that then stored its event (the worker that wrote it
    raced a redelivery): the batch counted the event as persisted, and the replay only
    removes the letter."""
    event = make_message()
    batch_id = accept([event])
    deliver(ingestion_app, [(batch_id, [event])])
    dead_letters.dead_letter(db, [(event, "refused")], batch_id=batch_id)
    deliver(ingestion_app, replay_queued(ingestion_app))
    assert dead_letters.count_dead_letters(db) == 0
    events_health = reporting.get("/health/pipeline").get_json()["events"]
    assert events_health == {"accepted": 1, "persisted": 1, "repeated": 0, "dead": 0, "unaccounted": 0}


def killed(*args, **kwargs):
    raise SystemExit("worker killed")
