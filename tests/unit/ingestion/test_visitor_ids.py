"""Ingestion derives a visitor id for events without `user_id`, from the visitor's address
and user agent, which never leave it: neither the queue, the store nor a dead letter has the
address. A server may name the visitor (`ip`, `user_agent`); a browser may not."""

import json
from datetime import UTC, datetime

import pytest

from app.ingestion import views
from app.store import dead_letters
from app.store import events as event_store
from tools.factories import make_event

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)
OTHER_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Safari/604.1"
)
VISITOR = {"ip": "198.51.100.23", "user_agent": OTHER_UA}


def post(client, body, path="/event", address="203.0.113.9", **headers):
    return client.post(
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"User-Agent": BROWSER_UA, **headers},
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.fixture
def queued(monkeypatch):
    """The messages ingestion queues, captured instead of sent."""
    messages = []
    monkeypatch.setattr(views.committer, "submit", lambda batch, **_: messages.extend(batch))
    return messages


def stored(db):
    return list(db[event_store.EVENTS].find({}, {"_id": 0}))


def test_an_event_without_user_id_is_stored_with_a_visitor_id(ingestion, db):
    assert post(ingestion, make_event(user_id=None)).status_code == 200
    [event] = stored(db)
    assert len(event["visitor_id"]) == 32
    assert event["user_id"] is None


def test_an_event_with_a_user_id_gets_no_visitor_id(ingestion, queued):
    post(ingestion, make_event(user_id="user-1"))
    assert "visitor_id" not in queued[0]


def test_the_same_visitor_gets_the_same_id_and_another_user_agent_another(ingestion, queued):
    post(ingestion, make_event(user_id=None))
    post(ingestion, make_event(user_id=None, path="/other"))
    post(ingestion, make_event(user_id=None), **{"User-Agent": OTHER_UA})
    post(ingestion, make_event(user_id=None), address="203.0.113.10")
    ids = [message["visitor_id"] for message in queued]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 3


def test_the_visitor_s_user_agent_is_queued_for_the_worker(ingestion, queued):
    post(ingestion, make_event(user_id=None))
    assert queued[0]["user_agent"] == BROWSER_UA


def test_the_address_is_in_neither_the_queue_nor_the_store_nor_a_dead_letter(ingestion, queued):
    post(ingestion, make_event(user_id=None), address="203.0.113.77")
    post(ingestion, {"events": [make_event(user_id=None, **VISITOR)]}, path="/events", address="203.0.113.77")
    assert len(queued) == 2
    now = datetime.now(UTC)
    for message in queued:
        kept = [
            message,
            event_store.event_document(message, now),
            dead_letters.letter(message, "boom", now, "b"),
        ]
        text = json.dumps(kept, default=str)
        assert "203.0.113.77" not in text
        assert VISITOR["ip"] not in text
        assert "ip" not in message


def test_a_browser_cannot_name_another_visitor(ingestion, queued):
    """In open mode too a page must not forge a visitor: a page's request names its page."""
    post(ingestion, make_event(user_id=None))
    post(ingestion, make_event(user_id=None, **VISITOR), Origin="https://shop.test")
    own, forged = queued
    assert forged["visitor_id"] == own["visitor_id"]
    assert forged["user_agent"] == BROWSER_UA


def test_a_server_in_open_mode_names_the_visitor_it_sends_for(ingestion, queued):
    post(ingestion, make_event(user_id=None, **VISITOR))
    post(ingestion, make_event(user_id=None), address=VISITOR["ip"], **{"User-Agent": OTHER_UA})
    on_behalf, direct = queued
    assert on_behalf["visitor_id"] == direct["visitor_id"]
    assert on_behalf["user_agent"] == OTHER_UA
