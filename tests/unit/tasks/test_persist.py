"""The worker's persistence logic, without a worker: mongomock and an in-memory Redis."""

import io
import json
import logging
import logging.config
import sys
import threading
import time
from datetime import UTC, datetime
from unittest import mock

import pytest
import redis
from celery.app import trace
from celery.exceptions import Retry
from pymongo.errors import AutoReconnect, BulkWriteError, OperationFailure

from app import logs
from app.extensions import FlaskTask, celery_app
from app.queue import counters, ledger
from app.rollups import compactor
from app.settings import Settings
from app.store import dead_letters, rollups
from app.store import events as event_store
from tasks import persist
from tools.factories import make_message


def queued(client, batch_id, messages):
    """The ledger entry ingestion makes for a batch it queues, with its events counted as
    accepted."""
    pipe = client.pipeline()
    ledger.record(pipe, batch_id, messages, counters.additions({counters.ACCEPTED: messages}))
    pipe.execute()


def test_a_batch_is_stored_and_only_new_events_count_as_persisted(db, counter_store):
    first, second = make_message(), make_message(site_id="other", timestamp="2025-11-16T09:00:00Z")
    queued(counter_store, "batch-1", [first, second])
    assert persist.store_batch(db, counter_store, "batch-1", [first, second]) == 2
    assert persist.store_batch(db, counter_store, "batch-1", [first, second]) == 0
    assert db[event_store.EVENTS].count_documents({}) == 2
    assert counters.totals(counter_store).persisted == 2
    assert counters.for_site_day(counter_store, "other", "2025-11-16").persisted == 1


def test_a_batch_sent_again_with_new_timestamps_counts_its_events_once(db, counter_store):
    """What a client retrying without timestamps gets: the server stamps the copy anew."""
    first = make_message(timestamp="2025-11-15T10:00:00Z")
    again = make_message(event_id=first["event_id"], timestamp="2025-11-15T10:00:07Z")
    queued(counter_store, "batch-1", [first])
    queued(counter_store, "batch-2", [again])
    persist.store_batch(db, counter_store, "batch-1", [first])
    persist.store_batch(db, counter_store, "batch-2", [again])
    totals = counters.totals(counter_store)
    assert (totals.persisted, totals.repeated) == (1, 1)
    day = (datetime(2025, 11, 15, tzinfo=UTC), datetime(2025, 11, 16, tzinfo=UTC))
    rows = event_store.count_by_user_and_path(db, first["site_id"], *day, None)
    assert [row["events"] for row in rows] == [1]


def test_storing_a_batch_takes_one_redis_round_trip_with_or_without_visits(db, counter_store, monkeypatch):
    """Ledger, counters, rollup deltas, the visits' rows and realtime entries ride in one
    transaction after the insert: the visits are the compactor's to assign, and the users'
    ids too, once a round rather than once a message."""
    round_trips = []
    # Only this thread's: an app left by an earlier test may still poll Redis from a thread
    # of its own (back-pressure readings), through the same patched methods.
    this_thread = threading.get_ident()

    def counted(send):
        def counting(self, *args, **kwargs):
            if threading.get_ident() == this_thread:
                round_trips.append(args[:1])
            return send(self, *args, **kwargs)

        return counting

    monkeypatch.setattr(redis.Redis, "execute_command", counted(redis.Redis.execute_command))
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted(redis.client.Pipeline.execute))
    # What a pipeline sends before its transaction (SCRIPT EXISTS for registered scripts).
    immediate = redis.client.Pipeline.immediate_execute_command
    monkeypatch.setattr(redis.client.Pipeline, "immediate_execute_command", counted(immediate))
    now = datetime.now(UTC).isoformat()  # recent: the realtime view's entries ride along
    messages = [make_message(user_id="u1", timestamp=now), make_message(user_id="u2", site_id="other")]
    persist.store_batch(db, counter_store, "batch-1", messages)
    assert len(round_trips) == 1
    round_trips.clear()
    persist.store_batch(
        db, counter_store, "batch-2", [make_message(user_id="u3", timestamp=now)], visits=False
    )
    assert len(round_trips) == 1


def test_events_mongodb_refuses_are_dead_lettered_and_the_rest_counted(db, counter_store, monkeypatch):
    good, bad = make_message(), make_message()
    outcome = event_store.InsertOutcome(
        inserted=[good],
        documents=[event_store.event_document(good, datetime.now(UTC), "batch-1")],
        rejected=[(bad, "Document failed validation")],
    )
    monkeypatch.setattr(event_store, "insert_events", lambda db, messages, batch_id: outcome)
    queued(counter_store, "batch-1", [good, bad])
    assert persist.store_batch(db, counter_store, "batch-1", [good, bad]) == 1
    [letter] = list(dead_letters.dead_letters(db))
    assert letter["event"] == bad
    assert letter["error"] == "Document failed validation"
    assert counters.totals(counter_store).persisted == 1


def test_retries_back_off_within_the_window_and_stop_after_it():
    settings = Settings(task_retry_window_seconds=600, task_retry_backoff_max=60)
    countdowns = [persist.retry_countdown(settings, retries, time.time()) for retries in range(12)]
    assert all(countdown is not None and 0 <= countdown <= 60 for countdown in countdowns)
    assert persist.retry_countdown(settings, 3, time.time() - 601) is None
    assert persist.retry_countdown(settings, 0, None) is not None


@pytest.fixture
def worker_app(ingestion_app):
    """Tasks run in the app's context, as they do in a worker."""
    with ingestion_app.app_context():
        yield ingestion_app


def failing_store(*args, **kwargs):
    raise AutoReconnect("connection refused")


def scheduled_retries(monkeypatch):
    """The retries the persist task schedules, instead of scheduling them."""
    retries = []

    def schedule_retry(**kwargs):
        retries.append(kwargs)
        return Retry()

    monkeypatch.setattr(persist.persist_events, "retry", schedule_retry)
    return retries


def test_a_transient_error_schedules_a_retry_that_remembers_the_first_failure(worker_app, monkeypatch):
    monkeypatch.setattr(persist, "store_batch", failing_store)
    retries = scheduled_retries(monkeypatch)
    persist.persist_events.apply([[make_message()]], task_id="batch-1")
    [scheduled] = retries
    assert scheduled["kwargs"]["first_failure_at"] == pytest.approx(time.time(), abs=5)
    assert scheduled["max_retries"] is None


def test_a_batch_failing_past_the_retry_window_is_dead_lettered(worker_app, db, monkeypatch):
    monkeypatch.setattr(persist, "store_batch", failing_store)
    events = [make_message(), make_message()]
    window = worker_app.extensions["settings"].task_retry_window_seconds
    gave_up_at = {"first_failure_at": time.time() - window - 1}
    assert persist.persist_events.apply([events], gave_up_at, task_id="batch-1").get() == 0
    letters = list(dead_letters.dead_letters(db))
    assert sorted(letter["event"]["event_id"] for letter in letters) == sorted(e["event_id"] for e in events)
    assert all(letter["error"].startswith("retries exhausted") for letter in letters)


def test_events_stored_before_the_retries_ran_out_stay_counted_and_only_the_rest_are_dead(
    worker_app, db, counter_store, reporting, monkeypatch
):
    stored, unstored = make_message(path="/kept"), make_message(path="/lost")
    queued(counter_store, "batch-1", [stored, unstored])
    event_store.insert_events(db, [stored], "batch-1")  # an earlier attempt, before MongoDB went away
    monkeypatch.setattr(persist, "store_batch", failing_store)
    window = worker_app.extensions["settings"].task_retry_window_seconds
    gave_up_at = {"first_failure_at": time.time() - window - 1}
    persist.persist_events.apply([[stored, unstored]], gave_up_at, task_id="batch-1")
    assert [letter["event"] for letter in list(dead_letters.dead_letters(db))] == [unstored]
    compactor.compact(db, counter_store)
    url = "/stats?site_id=site-abc-123&date=2025-11-15"
    stats = reporting.get(url).get_json()
    assert stats["top_paths"] == [{"path": "/kept", "views": 1}]
    assert stats == reporting.get(url.replace("/stats", "/stats/aggregated")).get_json()
    assert counters.totals(counter_store).persisted == 1
    assert ledger.outstanding(counter_store) == 0


@pytest.mark.parametrize(
    "code",
    [1, 24, 112, 262, 10107, 189, 11602],
    ids=[
        "InternalError",
        "LockTimeout",
        "WriteConflict",
        "ExceededTimeLimit",
        "NotWritablePrimary",
        "PrimarySteppedDown",
        "InterruptedDueToReplStateChange",
    ],
)
def test_a_server_condition_the_store_calls_transient_is_retried_by_the_persist_task(
    worker_app, counter_store, monkeypatch, code
):
    """FerretDB answers InternalError when SQLite is busy; MongoDB a write conflict or a time
    limit, and a replica set's member that is not (or no longer) the primary one of the last
    three: conditions that pass, so the batch is retried within its window, not failed."""

    def server_condition(*args, **kwargs):
        raise OperationFailure("database is locked", code=code)

    monkeypatch.setattr(persist, "store_batch", server_condition)
    retries = scheduled_retries(monkeypatch)
    queued(counter_store, "batch-1", [make_message()])
    persist.persist_events.apply([[make_message()]], task_id="batch-1")
    assert len(retries) == 1
    assert ledger.outstanding(counter_store) == 1


def test_an_event_write_failing_for_a_server_condition_is_retried_not_dead_lettered(
    worker_app, db, counter_store, monkeypatch
):
    """A write error with a transient code (here a write conflict) says nothing against the
    event: dead-lettering it would need an operator's replay for a passing condition."""
    collection_type = type(db[event_store.EVENTS])

    def insert_many(self, documents, ordered=True):
        raise BulkWriteError(
            {"writeErrors": [{"index": 0, "code": 112, "errmsg": "WriteConflict"}], "writeConcernErrors": []}
        )

    monkeypatch.setattr(collection_type, "insert_many", insert_many)
    retries = scheduled_retries(monkeypatch)
    queued(counter_store, "batch-1", [make_message()])
    persist.persist_events.apply([[make_message()]], task_id="batch-1")
    assert len(retries) == 1
    assert dead_letters.count_dead_letters(db) == 0
    assert ledger.outstanding(counter_store) == 1


def test_a_given_up_batch_killed_before_settling_keeps_no_letter_for_what_it_stores_when_it_comes_back(
    worker_app, db, counter_store, reporting, monkeypatch
):
    """The worker dead-lettered the batch, then died before settling it; the message comes
    back and MongoDB is back too: its events are stored, and their letters must go."""
    events = [make_message(), make_message()]
    queued(counter_store, "batch-1", events)
    window = worker_app.extensions["settings"].task_retry_window_seconds
    gave_up_at = {"first_failure_at": time.time() - window - 1}
    with monkeypatch.context() as patch:
        patch.setattr(persist, "store_batch", failing_store)
        patch.setattr(persist, "settle_batch", lambda *args, **kwargs: sys.exit("worker killed"))
        with pytest.raises(SystemExit):
            persist.persist_events.apply([events], gave_up_at, task_id="batch-1")
    assert dead_letters.count_dead_letters(db) == 2
    persist.persist_events.apply([events], gave_up_at, task_id="batch-1")  # comes back
    assert db[event_store.EVENTS].count_documents({}) == 2
    assert dead_letters.count_dead_letters(db) == 0
    health = reporting.get("/health/pipeline").get_json()["events"]
    assert (health["persisted"], health["dead"], health["unaccounted"]) == (2, 0, 0)


def previous_release_stored(db, batch_id, messages, collection=event_store.EVENTS):
    """What a worker of the release before issue #26 left of a batch it died storing: events
    keyed by bare event id (or, in `collection` MOVING_EVENTS, set aside by a migration)."""
    for message in messages:
        document = event_store.event_document(message, datetime.now(UTC), batch_id)
        if collection == event_store.EVENTS:
            document["_id"] = message["event_id"]
        db[collection].insert_one(document)


def day_events(db):
    return [document.get("events") for document in db[rollups.ROLLUPS].find({"_id": {"$regex": r"\|day\|"}})]


@pytest.mark.parametrize("collection", [event_store.EVENTS, event_store.MOVING_EVENTS])
def test_a_batch_partly_stored_by_the_previous_release_counts_every_event(db, counter_store, collection):
    """Redelivered to this release's worker before `migrate-store` moved them: the events
    stored earlier are refused by the (site, event id) index, and belong to this batch."""
    messages = [make_message(site_id="shop", timestamp="2025-11-16T09:00:00Z") for _ in range(4)]
    queued(counter_store, "batch-1", messages)
    previous_release_stored(db, "batch-1", messages[:2], collection)
    persist.store_batch(db, counter_store, "batch-1", messages)
    compactor.compact(db, counter_store)
    assert day_events(db) == [4]


@pytest.mark.parametrize("collection", [event_store.EVENTS, event_store.MOVING_EVENTS])
def test_a_batch_given_up_on_counts_what_the_previous_release_stored(db, counter_store, collection):
    messages = [make_message(site_id="shop", timestamp="2025-11-16T09:00:00Z") for _ in range(3)]
    queued(counter_store, "batch-1", messages)
    previous_release_stored(db, "batch-1", messages[:2], collection)
    persist.dead_letter_batch(db, counter_store, "batch-1", messages, "MongoDB refused")
    compactor.compact(db, counter_store)
    assert day_events(db) == [2]
    letters = [letter["_id"] for letter in db[dead_letters.DEAD_EVENTS].find()]
    assert letters == [event_store.event_key(messages[2])]


def test_a_stored_event_holds_its_source_and_device_and_not_the_user_agent(db, counter_store):
    message = make_message() | {
        "url": "https://example.com/pricing?utm_medium=social",
        "referrer": "https://t.co/abc",
        "language": "de-DE",
        "user_agent": (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
        ),
    }
    queued(counter_store, "batch-1", [message])
    persist.store_batch(db, counter_store, "batch-1", [message])
    stored = db[event_store.EVENTS].find_one({})
    assert "user_agent" not in stored
    assert {name: stored.get(name) for name in ("url", "referrer", "language")} == {
        name: message[name] for name in ("url", "referrer", "language")
    }
    assert {name: stored.get(name) for name in ("source", "utm_medium", "device", "browser", "os")} == {
        "source": "X",
        "utm_medium": "social",
        "device": "mobile",
        "browser": "Mobile Safari",
        "os": "iOS",
    }
    assert "utm_campaign" not in stored


SECRET_PATH = "/account/4111-1111-1111-1111"


def test_a_retried_batch_is_not_logged_with_its_events(monkeypatch):
    """Celery builds a retry's message from the request without its `argsrepr`
    (celery/celery#6086): the worker's "Received task" line, in JSON at LOG_LEVEL=debug,
    would then hold the events."""
    message = make_message(path=SECRET_PATH, user_id="alice@example.com")
    sent: list[dict] = []

    def capture(signature, *args, **kwargs):
        sent.append(dict(signature.options))

    monkeypatch.setattr("celery.canvas.Signature.apply_async", capture)
    persist.persist_events.push_request(
        id="batch-1",
        args=[[message]],
        kwargs={},
        retries=0,
        argsrepr="[1 events]",
        kwargsrepr="{}",
        headers={"request_ids": ["r-1"]},
        delivery_info={"exchange": "", "routing_key": "celery"},
        called_directly=False,
    )
    try:
        with pytest.raises(Retry):
            persist.persist_events.retry(exc=RuntimeError("away"), countdown=1, max_retries=None, kwargs={})
    finally:
        persist.persist_events.pop_request()
    (options,) = sent
    # What the retried message's headers hold, as the broker gets them.
    argsrepr = celery_app.amqp.as_task_v2(
        "batch-1", persist.persist_events.name, args=[[message]], argsrepr=options.get("argsrepr")
    ).headers["argsrepr"]

    # The worker's "Received task" line for that message, in JSON at LOG_LEVEL=debug.
    stream = io.StringIO()
    config = logs.dict_config("debug", "json")
    config["handlers"]["stderr"]["stream"] = stream
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    try:
        with mock.patch.dict(logging.root.manager.loggerDict):
            logging.config.dictConfig(config)
            context = {"id": "batch-1", "name": "persist", "args": argsrepr, "kwargs": "{}", "eta": None}
            received = logging.getLogger("celery.worker.strategy")
            received.info(trace.LOG_RECEIVED, context, extra={"data": context})
    finally:
        logging.root.handlers[:], logging.root.level = root_handlers, root_level
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert SECRET_PATH not in json.dumps(line), line


def test_the_persist_task_runs_inside_the_flask_apps_context():
    """Its own class (for the retry's argsrepr) must still be the app's task class."""
    assert isinstance(persist.persist_events, FlaskTask)
