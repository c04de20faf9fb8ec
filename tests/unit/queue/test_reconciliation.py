"""Reconciliation counts what happened: each accepted event once as accepted, and once as
persisted, repeated or dead, whatever redeliveries and retried transactions do."""

import json

import pytest
import redis

from app.queue import counters, ledger, publish, transport
from app.rollups import compactor
from app.store import dead_letters
from app.store import events as event_store
from tasks import persist
from tests.unit.queue.accepted import accept
from tools.factories import make_event, make_message


@pytest.fixture
def worker_app(ingestion_app):
    """Tasks run in the app's context, as they do in a worker."""
    with ingestion_app.app_context():
        yield ingestion_app


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
        batch_id="batch-0",
    )
    events = reporting.get("/health/pipeline?site_id=a&date=2025-11-15").get_json()["events"]
    assert events["dead"] == 1
    assert reporting.get("/health/pipeline").get_json()["events"]["dead"] == 3


def refusing(event_ids):
    """An insert_events that refuses the events of `event_ids` and stores the others."""
    store = event_store.insert_events

    def insert_events(db, messages, batch_id=None):
        outcome = store(db, [m for m in messages if m["event_id"] not in event_ids], batch_id)
        outcome.rejected = [(m, "refused") for m in messages if m["event_id"] in event_ids]
        return outcome

    return insert_events


def pipeline_events(reporting):
    return reporting.get("/health/pipeline").get_json()["events"]


def test_an_event_refused_in_two_accepted_batches_counts_once_dead_and_once_repeated(
    worker_app, db, counter_store, reporting, monkeypatch
):
    """The client's retry after a 504, with the event_id it was given: one letter holds the
    first copy, and the retry is a repeat of it."""
    message = make_message(event_id="6f1c2a9e-2b1e-4c7d-9a51-0d7c8f3e4b21")
    monkeypatch.setattr(event_store, "insert_events", refusing({message["event_id"]}))
    for _ in range(2):
        persist.store_batch(db, counter_store, accept([message]), [message])
    events = pipeline_events(reporting)
    assert (events["dead"], events["repeated"], events["unaccounted"]) == (1, 1, 0)


def test_a_refusing_batch_delivered_again_counts_its_dead_event_once(
    worker_app, db, counter_store, reporting, monkeypatch
):
    message = make_message()
    batch_id = accept([message])
    monkeypatch.setattr(event_store, "insert_events", refusing({message["event_id"]}))
    with monkeypatch.context() as patch:
        patch.setattr(redis.client.Pipeline, "execute", killed)  # letter written, not settled
        with pytest.raises(SystemExit):
            persist.store_batch(db, counter_store, batch_id, [message])
    persist.persist_events.apply([[message]], task_id=batch_id)  # redelivered, refused again
    events = pipeline_events(reporting)
    assert (events["dead"], events["repeated"], events["unaccounted"]) == (1, 0, 0)


def test_an_event_refused_then_stored_when_its_batch_comes_back_keeps_no_letter(
    worker_app, db, counter_store, reporting, monkeypatch
):
    """Killed after its letter was written, the batch comes back and MongoDB takes the event:
    stored and dead-lettered at once, it would count twice."""
    message = make_message()
    batch_id = accept([message])
    with monkeypatch.context() as patch:
        patch.setattr(event_store, "insert_events", refusing({message["event_id"]}))
        patch.setattr(redis.client.Pipeline, "execute", killed)
        with pytest.raises(SystemExit):
            persist.store_batch(db, counter_store, batch_id, [message])
    persist.persist_events.apply([[message]], task_id=batch_id)  # redelivered, stored
    assert dead_letters.count_dead_letters(db) == 0
    events = pipeline_events(reporting)
    assert (events["persisted"], events["dead"], events["unaccounted"]) == (1, 0, 0)


def test_a_delivery_of_a_batch_already_settled_stores_nothing(
    worker_app, db, counter_store, reporting, monkeypatch
):
    """The first delivery dead-lettered an event and settled the batch; a later one (its worker
    died before the acknowledgement) must not store it: its tallies would never reach the
    rollups, so /stats would never count it while the raw events do."""
    kept, refused = make_message(path="/kept"), make_message(path="/refused")
    batch_id = accept([kept, refused])
    with monkeypatch.context() as patch:
        patch.setattr(event_store, "insert_events", refusing({refused["event_id"]}))
        persist.persist_events.apply([[kept, refused]], task_id=batch_id)
    persist.persist_events.apply([[kept, refused]], task_id=batch_id)  # delivered again
    compactor.compact(db, counter_store)
    assert db[event_store.EVENTS].count_documents({}) == 1
    assert dead_letters.count_dead_letters(db) == 1
    url = "/stats?site_id=site-abc-123&date=2025-11-15"
    assert (
        reporting.get(url).get_json() == reporting.get(url.replace("/stats", "/stats/aggregated")).get_json()
    )
    assert pipeline_events(reporting)["unaccounted"] == 0


def test_a_letter_replayed_after_a_retry_with_another_timestamp_stored_its_event_counts_once(
    worker_app, db, counter_store, reporting, monkeypatch
):
    """The retry's copy is stored under another key than the letter's: the replay still finds
    the stored copy and counts the letter's as a repeat."""
    message = make_message(timestamp="2025-11-15T10:00:00Z")
    retry = make_message(event_id=message["event_id"], timestamp="2025-11-15T10:00:09Z")
    with monkeypatch.context() as patch:
        patch.setattr(event_store, "insert_events", refusing({message["event_id"]}))
        persist.store_batch(db, counter_store, accept([message]), [message])
    persist.store_batch(db, counter_store, accept([retry]), [retry])
    publish.enqueue_events([message], replay=True)
    assert dead_letters.count_dead_letters(db) == 0
    events = pipeline_events(reporting)
    assert (events["persisted"], events["repeated"], events["dead"], events["unaccounted"]) == (1, 1, 0, 0)
