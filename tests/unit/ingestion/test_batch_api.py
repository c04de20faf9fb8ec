"""`POST /events`: batches accepted with one enqueue, invalid events reported by index."""

import json
from unittest import mock

import pytest
from kombu.exceptions import OperationalError
from marshmallow import fields

from app.ingestion.schemas import MAX_BATCH_EVENTS
from app.ingestion.views import committer
from app.settings import Settings
from app.store import events as event_store
from tools.factories import make_event, new_site_id


def post_batch(client, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/events", data=data, content_type=content_type)


def events_of(site_id, count):
    return [make_event(site_id=site_id, path=f"/page-{index}") for index in range(count)]


@pytest.fixture
def enqueued(monkeypatch):
    """Every `enqueue_events` call the ingestion blueprint makes, with its messages."""
    calls: list[list[dict]] = []
    monkeypatch.setattr(committer, "enqueue", calls.append)
    return calls


@pytest.mark.parametrize("envelope", [list, lambda events: {"events": events}], ids=["array", "object"])
def test_a_batch_is_accepted_and_every_event_stored(ingestion, db, envelope):
    site_id = new_site_id()
    response = post_batch(ingestion, envelope(events_of(site_id, 3)))
    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted", "accepted": 3, "rejected": 0, "errors": {}}
    paths = {doc["path"] for doc in db[event_store.EVENTS].find({"site_id": site_id})}
    assert paths == {"/page-0", "/page-1", "/page-2"}


def test_a_batch_is_one_enqueue_of_all_its_valid_events(ingestion, enqueued):
    events = events_of(new_site_id(), 100)
    events[7] = make_event(timestamp="not a time")
    assert post_batch(ingestion, events).status_code == 200
    assert len(enqueued) == 1
    assert len(enqueued[0]) == 99
    assert [message["path"] for message in enqueued[0]] == [e["path"] for e in events if e is not events[7]]


def test_invalid_events_are_rejected_by_index_and_the_rest_accepted(ingestion, db):
    site_id = new_site_id()
    events = events_of(site_id, 5)
    events[1] = make_event(site_id=site_id, event_type=None)
    events[3] = "not an event"
    response = post_batch(ingestion, events)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["accepted"], body["rejected"]) == ("accepted", 3, 2)
    assert body["errors"] == {
        "1": {"event_type": ["Missing data for required field."]},
        "3": {"_schema": ["Invalid input type."]},
    }
    assert db[event_store.EVENTS].count_documents({"site_id": site_id}) == 3


def test_a_batch_without_a_valid_event_is_400_with_errors_by_index(ingestion, enqueued):
    response = post_batch(ingestion, [make_event(site_id=12), make_event(timestamp=None)])
    assert response.status_code == 400
    assert response.get_json() == {
        "status": "error",
        "message": "No valid event in the batch",
        "errors": {
            "0": {"site_id": ["Not a valid string."]},
            "1": {"timestamp": ["Missing data for required field."]},
        },
    }
    assert enqueued == []


@pytest.mark.parametrize("body", [[], {"events": []}], ids=["array", "object"])
def test_an_empty_batch_is_400(ingestion, body):
    response = post_batch(ingestion, body)
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"events": [f"A batch holds 1 to {MAX_BATCH_EVENTS} events."]}


def test_more_events_than_the_batch_limit_is_400_and_nothing_is_enqueued(ingestion, enqueued):
    response = post_batch(ingestion, [make_event()] * (MAX_BATCH_EVENTS + 1))
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "error"
    assert body["errors"] == {"events": [f"A batch holds 1 to {MAX_BATCH_EVENTS} events."]}
    assert enqueued == []


def test_an_oversized_batch_is_refused_before_any_item_is_looked_at(ingestion, enqueued, monkeypatch):
    """A 1 MiB array of zeros holds half a million items: counting them is enough."""
    looked_at = []
    real_deserialize = fields.Raw._deserialize

    def deserialize(self, *args, **kwargs):
        looked_at.append(1)
        return real_deserialize(self, *args, **kwargs)

    monkeypatch.setattr(fields.Raw, "_deserialize", deserialize)
    response = post_batch(ingestion, "[" + ",".join(["0"] * 500_000) + "]")  # 1 MiB, compact
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"events": [f"A batch holds 1 to {MAX_BATCH_EVENTS} events."]}
    assert looked_at == []
    assert enqueued == []


def test_the_largest_batch_is_accepted(ingestion, enqueued):
    response = post_batch(ingestion, [make_event()] * MAX_BATCH_EVENTS)
    assert response.get_json()["accepted"] == MAX_BATCH_EVENTS


def test_a_batch_larger_than_its_byte_limit_is_413(ingestion, enqueued):
    body = json.dumps([make_event(path="/" + "a" * 2000)] * 400) + " " * Settings().max_batch_bytes
    response = post_batch(ingestion, body)
    assert response.status_code == 413
    assert response.get_json()["status"] == "error"
    assert enqueued == []


def test_a_batch_may_be_larger_than_the_single_event_limit(ingestion, settings, enqueued):
    events = [make_event(path="/" + "a" * 2000)] * 100
    assert len(json.dumps(events)) > settings.max_event_bytes
    assert post_batch(ingestion, events).status_code == 200


def test_an_object_without_events_is_400_naming_the_field(ingestion):
    response = post_batch(ingestion, {"event": []})
    assert response.status_code == 400
    assert response.get_json()["message"] == "Missing required fields: events"


@pytest.mark.parametrize("payload", ['"text"', "42", "null", "{not json"])
def test_a_body_that_is_not_a_batch_is_400(ingestion, payload):
    response = post_batch(ingestion, payload)
    assert response.status_code == 400
    assert response.get_json()["status"] == "error"


def test_an_unreachable_queue_makes_the_batch_503_and_nothing_accepted(ingestion, db, monkeypatch):
    refused = OperationalError("Connection refused.")
    monkeypatch.setattr("tasks.persist.persist_events.apply_async", mock.Mock(side_effect=refused))
    response = post_batch(ingestion, events_of("site-down", 2))
    assert (response.status_code, response.get_json()["status"]) == (503, "error")
    assert db[event_store.EVENTS].count_documents({}) == 0
