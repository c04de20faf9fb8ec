"""Reconciliation counts what happened: each accepted event once as accepted, and once as
persisted, repeated or dead, whatever redeliveries and retried transactions do."""

import json

import pytest
import redis

from app.queue import counters, ledger, publish, transport
from app.store import dead_letters
from tasks import persist
from tools.factories import make_event, make_message


@pytest.fixture
def worker_app(ingestion_app):
    """Tasks run in the app's context, as they do in a worker."""
    with ingestion_app.app_context():
        yield ingestion_app


def accept(messages):
    """Queue a batch as ingestion does (its ledger entry and counters), without running it;
    return its id."""
    sent = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish, "publish", lambda messages, batch_id: sent.append(batch_id))
        publish.enqueue_events(messages)
    return sent[0]


def killed(*args, **kwargs):
    raise SystemExit("worker killed")


def test_events_a_killed_delivery_stored_count_as_persisted_when_the_batch_comes_back(
    worker_app, db, counter_store, monkeypatch
):
    messages = [make_message(), make_message(site_id="other")]
    batch_id = accept(messages)
    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", killed)  # after MongoDB, before Redis
        with pytest.raises(SystemExit):
            persist.store_batch(db, counter_store, batch_id, messages)
    persist.store_batch(db, counter_store, batch_id, messages)  # redelivered
    assert counters.totals(counter_store).persisted == 2
    assert counters.for_site_day(counter_store, "other", "2025-11-15").persisted == 1


def test_a_batch_that_comes_back_after_it_settled_counts_nothing_more(worker_app, db, counter_store):
    messages = [make_message(), make_message()]
    batch_id = accept(messages)
    persist.store_batch(db, counter_store, batch_id, messages)
    persist.store_batch(db, counter_store, batch_id, messages)  # a worker died before its ack
    assert counters.totals(counter_store).persisted == 2


def test_a_publish_transaction_run_twice_counts_its_events_accepted_once(
    worker_app, counter_store, monkeypatch
):
    """Kombu or redis-py sending a MULTI/EXEC again whose first EXEC landed, unheard."""

    def transaction_landing_twice(messages, batch_id):
        writes = transport._alongside.get()
        assert writes is not None
        for _ in range(2):
            pipe = counter_store.pipeline(transaction=True)
            pipe.lpush("celery", json.dumps(messages))
            writes.write(pipe)
            pipe.execute()
        writes.sent = True

    monkeypatch.setitem(worker_app.extensions["celery"].conf, "task_always_eager", False)
    monkeypatch.setattr(publish, "publish", transaction_landing_twice)
    publish.enqueue_events([make_message(), make_message()])
    assert counters.totals(counter_store).accepted == 2
    assert ledger.outstanding(counter_store) == 1


def test_pipeline_health_shows_nothing_missing_after_a_client_retries_an_event_already_stored(
    ingestion, reporting, db
):
    event = make_event(event_id="6f1c2a9e-2b1e-4c7d-9a51-0d7c8f3e4b21")
    assert ingestion.post("/event", json=event).status_code == 200
    assert ingestion.post("/event", json=event).status_code == 200  # the client's retry
    events = reporting.get("/health/pipeline").get_json()["events"]
    assert events["accepted"] == 2
    assert events["persisted"] == 1
    assert events["unaccounted"] == 0


def test_pipeline_health_for_one_site_day_counts_only_its_dead_letters(reporting, db, counter_store):
    dead_letters.dead_letter(
        db,
        [
            (make_message(site_id="a", timestamp="2025-11-15T23:30:00-02:00"), "refused"),  # the 16th in UTC
            (make_message(site_id="a"), "refused"),
            (make_message(site_id="b"), "refused"),
        ],
    )
    events = reporting.get("/health/pipeline?site_id=a&date=2025-11-15").get_json()["events"]
    assert events["dead"] == 1
    assert reporting.get("/health/pipeline").get_json()["events"]["dead"] == 3
