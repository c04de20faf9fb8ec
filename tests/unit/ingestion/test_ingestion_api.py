import gzip
import json
import uuid

import pytest
from kombu.exceptions import OperationalError

from app.ingestion import views
from app.queue.transport import PublishOutcomeUnknownError
from app.store import events as event_store
from tools.factories import make_event

SEED_BODY = make_event()


def post(client, body, content_type="application/json"):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/event", data=data, content_type=content_type)


def test_an_accepted_event_is_queued_and_stored(ingestion, db):
    response = post(ingestion, SEED_BODY)
    assert response.status_code == 200
    assert response.get_json() == {"status": "accepted"}
    stored = db[event_store.EVENTS].find_one({"site_id": "site-abc-123"})
    assert stored["path"] == "/pricing"
    assert stored["user_id"] == "user-xyz-789"


def test_every_accepted_event_is_answered_as_jsonify_answers_it(ingestion, ingestion_app):
    with ingestion_app.app_context():
        expected = views.jsonify(status="accepted")
    for _ in range(2):  # the second answer is the one built once
        response = post(ingestion, SEED_BODY)
        assert response.data == expected.data
        assert response.headers["Content-Type"] == expected.headers["Content-Type"]
        assert response.headers["Content-Length"] == expected.headers["Content-Length"]


def test_a_request_lingers_for_company_as_long_as_the_setting_says(ingestion, settings, monkeypatch):
    lingers = []
    monkeypatch.setattr(views.committer, "submit", lambda messages, linger, **_: lingers.append(linger))
    assert post(ingestion, SEED_BODY).status_code == 200
    assert lingers == [settings.group_commit_linger_ms / 1000]
    assert lingers[0] > 0


def test_the_same_event_id_posted_twice_is_stored_once(ingestion, db):
    body = make_event(event_id="6f1c2a9e-2b1e-4c7d-9a51-0d7c8f3e4b21")
    assert post(ingestion, body).status_code == 200
    assert post(ingestion, body).status_code == 200
    assert db[event_store.EVENTS].count_documents({}) == 1


def test_missing_fields_give_400_naming_them(ingestion):
    response = post(ingestion, {"path": "/"})
    assert response.status_code == 400
    body = response.get_json()
    assert body["status"] == "error"
    assert body["message"] == "Missing required fields: site_id, event_type, timestamp"
    assert set(body["errors"]) == {"site_id", "event_type", "timestamp"}


def test_a_wrong_type_gives_400_with_the_field(ingestion):
    body = post(ingestion, make_event(site_id=12)).get_json()
    assert body["message"] == "Invalid fields: site_id"
    assert "site_id" in body["errors"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{not json", "Request body is not valid JSON"),
        ("", "Request body is not valid JSON"),
        ("[1, 2]", "Request body must be a JSON object"),
        ('"text"', "Request body must be a JSON object"),
        ("null", "Request body must be a JSON object"),
        ("[" * 5000 + "]" * 5000, "Request body is nested too deeply"),
        ('{"site_id": ' + "[" * 5000 + "]" * 5000 + "}", "Request body is nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_json_object_gives_400(ingestion, payload, message):
    response = post(ingestion, payload)
    assert response.status_code == 400
    assert response.get_json() == {"status": "error", "message": message}


def test_a_non_json_content_type_gives_415(ingestion):
    response = post(ingestion, json.dumps(SEED_BODY), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.get_json()["status"] == "error"


def test_a_body_over_the_limit_gives_413(ingestion, settings):
    response = post(ingestion, make_event(path="/" + "a" * settings.max_event_bytes))
    assert response.status_code == 413
    assert response.get_json()["status"] == "error"


def test_an_unreachable_queue_gives_503_and_nothing_is_stored(ingestion, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr("tasks.persist.persist_events.apply_async", refuse)
    response = post(ingestion, SEED_BODY)
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"
    assert "not accepted" in response.get_json()["message"]
    assert db[event_store.EVENTS].count_documents({}) == 0


def publish_unanswered(messages):
    raise PublishOutcomeUnknownError("no reply from Redis to the enqueue: Timeout reading from socket")


def test_an_event_whose_enqueue_got_no_reply_gets_504_with_the_event_id_to_retry_with(ingestion, monkeypatch):
    """Not a 503, which says "not queued" (a retry would count the event twice if it was)."""
    monkeypatch.setattr(views.committer, "enqueue", publish_unanswered)
    response = post(ingestion, SEED_BODY)
    assert response.status_code == 504
    assert response.headers["Retry-After"].isdigit()
    body = response.get_json()
    assert body["status"] == "error"
    assert "same event_id" in body["message"]
    assert uuid.UUID(body["event_id"])
    again = post(ingestion, make_event(event_id="6f1c2a9e-2b1e-4c7d-9a51-0d7c8f3e4b21"))
    assert again.get_json()["event_id"] == "6f1c2a9e-2b1e-4c7d-9a51-0d7c8f3e4b21"


def test_a_batch_whose_enqueue_got_no_reply_gets_504_with_its_event_ids_by_index(ingestion, monkeypatch):
    monkeypatch.setattr(views.committer, "enqueue", publish_unanswered)
    batch = [make_event(), make_event(timestamp="yesterday"), make_event(event_id=str(uuid.uuid4()))]
    response = ingestion.post("/events", json=batch)
    assert response.status_code == 504
    event_ids = response.get_json()["event_ids"]
    assert list(event_ids) == ["0", "2"]
    assert event_ids["2"] == batch[2]["event_id"]


def test_an_unknown_outcome_raised_past_the_committer_is_a_504_not_a_500(ingestion, monkeypatch):
    """Wherever an enqueue's unknown outcome surfaces, the answer never says "not queued"
    nor "server error"."""

    def submit(*args, **kwargs):
        raise PublishOutcomeUnknownError("no reply from Redis to the enqueue")

    monkeypatch.setattr(views.committer, "submit", submit)
    response = post(ingestion, SEED_BODY)
    assert response.status_code == 504
    assert response.headers["Retry-After"].isdigit()
    assert "may or may not" in response.get_json()["message"]


def test_unknown_routes_and_methods_answer_in_json(ingestion):
    missing = ingestion.get("/nope")
    assert missing.status_code == 404
    assert missing.get_json()["status"] == "error"
    wrong_method = ingestion.get("/event")
    assert wrong_method.status_code == 405
    assert wrong_method.get_json()["status"] == "error"


def test_health_is_ok_when_redis_answers(ingestion):
    assert ingestion.get("/health").get_json() == {"status": "ok", "service": "ingestion-service"}


def test_health_is_503_when_redis_does_not_answer(ingestion, redis_server):
    redis_server.connected = False
    response = ingestion.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "error"


def test_a_gzip_body_without_its_header_is_not_json(ingestion):
    response = post(ingestion, gzip.compress(json.dumps(SEED_BODY).encode()))
    assert response.status_code == 400
