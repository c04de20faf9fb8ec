"""Back-pressure (app/ingestion/backpressure.py): a long queue or a nearly full Redis turns
events away with a 503 and a reason, before anything is queued."""

import json
import re
from dataclasses import replace

import pytest
from kombu.exceptions import OperationalError
from redis.exceptions import OutOfMemoryError

from app import create_app
from app.ingestion import backpressure
from app.ingestion.views import watch
from app.queue import QUEUE
from app.store import events as event_store
from tools.factories import make_event
from tools.processes import wait_until


@pytest.fixture
def app_with(settings, db, counter_store, monkeypatch):
    def build(**overrides):
        app = create_app("ingestion", replace(settings, **overrides))
        monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
        return app

    return build


def post(client, body=None, path="/event"):
    return client.post(path, data=json.dumps(body or make_event()), content_type="application/json")


def fill_queue(counter_store, messages):
    counter_store.lpush(QUEUE, *[b"{}"] * messages)
    watch.refresh()  # what the watch thread does twice a second


def test_above_the_high_water_mark_events_get_503_with_retry_after(app_with, counter_store, db):
    client = app_with(queue_high_water=10).test_client()
    fill_queue(counter_store, 10)
    for response in (post(client), post(client, [make_event()], "/events")):
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        message = response.get_json()["message"]
        assert "backlog too long" in message
        assert "not accepted" in message
        assert not re.search(r"\d", message)  # the figures are the operator's
    assert db[event_store.EVENTS].count_documents({}) == 0


def test_below_the_mark_events_are_accepted(app_with, counter_store):
    client = app_with(queue_high_water=10).test_client()
    fill_queue(counter_store, 9)
    assert post(client).status_code == 200


def test_health_says_the_backlog_is_above_the_mark_without_the_figures(app_with, counter_store):
    client = app_with(queue_high_water=10).test_client()
    counter_store.lpush(QUEUE, *[b"{}"] * 12)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "error",
        "message": "Event queue backlog too long: the event was not accepted, please retry later",
    }


def test_a_nearly_full_redis_refuses_events_and_health_says_so_without_byte_counts():
    reading = backpressure.Reading(depth=0, used_memory=95_000_000, maxmemory=100_000_000)
    reason = backpressure.overload(reading, high_water=0, memory_high_water=0.9)
    assert reason == "Event queue nearly full: the event was not accepted, please retry later"
    detail = backpressure.overload_detail(reading, high_water=0, memory_high_water=0.9)
    assert detail is not None
    assert "95000000 of 100000000 bytes" in detail  # for operators only (/health/pipeline)
    assert backpressure.overload(reading, high_water=0, memory_high_water=1.0) is None
    assert backpressure.overload(replace(reading, maxmemory=0), high_water=0, memory_high_water=0.9) is None


def test_operators_read_the_figures_in_the_pipelines_health(settings, db, counter_store):
    reporting = create_app("reporting", replace(settings, queue_high_water=10)).test_client()
    counter_store.lpush(QUEUE, *[b"{}"] * 12)
    state = reporting.get("/health/pipeline").get_json()["backpressure"]
    assert state["refusing"] == "Event queue backlog too long (12 messages waiting, high-water mark 10)"
    assert all(isinstance(state[name], int) for name in ("redis_used_memory", "redis_maxmemory"))
    assert set(state) == {"refusing", "redis_used_memory", "redis_maxmemory"}


def test_without_a_reading_nothing_is_refused(app_with, counter_store, redis_server):
    client = app_with(queue_high_water=10).test_client()
    fill_queue(counter_store, 10)
    redis_server.connected = False
    watch.refresh()  # a failed reading says nothing: the enqueue decides
    assert watch.overload(10, 0.9) is None
    assert "backlog" not in post(client).get_data(as_text=True)


def test_redis_out_of_memory_on_enqueue_is_a_503_not_accepted(ingestion, monkeypatch, db):
    def full(*args, **kwargs):
        # Celery's publish wraps Redis's refusal so.
        cause = OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")
        raise OperationalError(str(cause)) from cause

    monkeypatch.setattr("tasks.persist.persist_events.apply_async", full)
    response = post(ingestion)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert "full" in response.get_json()["message"]
    assert db[event_store.EVENTS].count_documents({}) == 0


def test_the_watch_survives_any_failure_of_a_reading(monkeypatch):
    failures = [AttributeError("a connection closed under the client")]

    def read() -> backpressure.Reading:
        if failures:
            raise failures.pop()
        return backpressure.Reading(7, 0, 0)

    monkeypatch.setattr(backpressure, "INTERVAL_SECONDS", 0.01)
    queue_watch = backpressure.QueueWatch(read)
    queue_watch.overload(high_water=5, memory_high_water=1.0)  # starts its thread
    wait_until(lambda: queue_watch.latest is not None, 5, "a reading after a failed one", 0.01)
    assert queue_watch.overload(high_water=5, memory_high_water=1.0) is not None
