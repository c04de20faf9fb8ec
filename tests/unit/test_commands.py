"""Operator tools: the pipeline health check and replaying dead letters."""

import json
import time

from app import commands
from app.queue import QUEUE, counters, ledger
from app.queue.transport import PublishOutcomeUnknownError
from app.rollups import compactor
from app.store import dead_letters
from app.store import events as event_store
from tasks.persist import store_batch
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
    dead_letters.dead_letter(db, [(make_message(), "refused")])
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
    dead_letters.dead_letter(db, [(event, "refused") for event in events])
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
    dead_letters.dead_letter(db, [(event, "refused")])

    def refuse_again(db, messages, batch_id=None):
        return event_store.InsertOutcome(rejected=[(message, "refused again") for message in messages])

    monkeypatch.setattr(event_store, "insert_events", refuse_again)
    result = ingestion_app.test_cli_runner().invoke(args=["replay-dead"])
    assert result.exit_code == 0, result.output
    [letter] = dead_letters.dead_letters(db, limit=5)
    assert letter["event"] == event
    assert letter["error"] == "refused again"


def test_replay_dead_stops_keeping_the_letters_of_a_batch_the_queue_did_not_confirm(
    ingestion_app, db, counter_store, monkeypatch
):
    dead_letters.dead_letter(db, [(make_message(), "refused") for _ in range(3)])

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
