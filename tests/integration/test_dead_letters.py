"""Dead letters against the real server of the session (FerretDB locally): replaced when an
event fails again, and never deleted while their event is not stored."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from pymongo import MongoClient
from pymongo.database import Database

from app import create_app
from app.queue import QUEUE, REPLAY_PREFIX, counters, ledger
from app.settings import Settings
from app.store import dead_letters
from app.store import events as event_store
from app.store.events import event_key
from tasks.persist import store_batch
from tools.factories import make_message


@pytest.fixture
def letters_db(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    """A database of this test's own, so no other test's dead letters count."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True, socketTimeoutMS=20_000)
    name = f"dead_letters_{uuid.uuid4().hex[:8]}"
    yield client[name]
    client.drop_database(name)
    client.close()


def test_events_failing_again_replace_their_letters_in_commands_the_server_answers(letters_db):
    """More re-failures than FerretDB answers in one update command (it never did 100)."""
    events = [make_message() for _ in range(150)]
    assert dead_letters.dead_letter(letters_db, [(event, "boom") for event in events], batch_id="b1") == set()
    held_elsewhere = dead_letters.dead_letter(
        letters_db, [(event, "boom again") for event in events], batch_id="b2"
    )
    assert held_elsewhere == {event_key(event) for event in events}
    letters = list(dead_letters.dead_letters(letters_db))
    assert len(letters) == 150
    assert {(letter["error"], letter["batch_id"]) for letter in letters} == {("boom again", "b1")}


def test_two_removing_the_same_letters_at_once_remove_each_once(letters_db):
    """What lets the worker that removed a letter count its copy: a delete by `_id` alone is
    exact on FerretDB too."""
    events = [make_message() for _ in range(300)]
    dead_letters.dead_letter(letters_db, [(event, "boom") for event in events], batch_id="b1")
    keys = {event_key(event) for event in events}
    removed: list[set[str]] = []
    removers = [
        threading.Thread(target=lambda: removed.append(dead_letters.remove(letters_db, keys)))
        for _ in range(2)
    ]
    for remover in removers:
        remover.start()
    for remover in removers:
        remover.join(60)
    assert removed[0] | removed[1] == keys
    assert removed[0] & removed[1] == set()
    assert dead_letters.count_dead_letters(letters_db) == 0


@pytest.fixture
def unread_redis_url(redis_url: str) -> str:
    """A database of the session's Redis that no worker reads, emptied."""
    url = urlsplit(redis_url)._replace(path="/6").geturl()
    redis.Redis.from_url(url).flushdb()
    return url


def test_replay_dead_never_deletes_a_letter_written_again_while_it_runs(
    letters_db, mongo_uri, unread_redis_url
):
    """A worker takes a replayed batch at once and MongoDB refuses an event of it again: its
    new letter must survive the command. FerretDB deletes by scanning, then by `_id` in a
    transaction of its own, so a delete filtered on what it read is no guard there."""
    refused_again, *others = [make_message() for _ in range(2000)]
    dead_letters.dead_letter(letters_db, [(refused_again, "refused")], batch_id="b1")
    dead_letters.dead_letter(letters_db, [(event, "refused") for event in others], batch_id="b1")
    database_url = urlsplit(mongo_uri)._replace(path=f"/{letters_db.name}").geturl()
    app = create_app("ingestion", Settings(redis_url=unread_redis_url, mongo_uri=database_url))
    results = []
    command = threading.Thread(
        target=lambda: results.append(app.test_cli_runner().invoke(args=["replay-dead"]))
    )
    queue = redis.Redis.from_url(unread_redis_url)
    command.start()
    deadline = time.monotonic() + 60
    while not queue.llen(QUEUE) and time.monotonic() < deadline:
        time.sleep(0.005)
    dead_letters.dead_letter(
        letters_db, [(refused_again, "refused again")], batch_id="b2"
    )  # a worker, meanwhile
    command.join(120)
    assert results[0].exit_code == 0, results[0].output
    letter = letters_db[dead_letters.DEAD_EVENTS].find_one({"_id": event_key(refused_again)})
    assert letter is not None, "the event is in neither collection"
    assert letter["error"] == "refused again"


def test_two_replays_of_the_same_letters_stored_at_once_count_each_event_once(
    letters_db, unread_redis_url, monkeypatch
):
    """An operator ran replay-dead twice and two workers store both replays at once; MongoDB
    refuses one event again. Every other event is stored and counted once, its letter gone;
    the refused one keeps its letter."""
    client = redis.Redis.from_url(unread_redis_url)
    refused_again, *events = [make_message() for _ in range(200)]
    messages = [refused_again, *events]
    pipe = client.pipeline()  # the batch ingestion accepted, which MongoDB refused whole
    ledger.record(pipe, "b1", messages, counters.additions({counters.ACCEPTED: messages}))
    ledger.settle(pipe, "b1")
    pipe.execute()
    dead_letters.dead_letter(letters_db, [(message, "refused") for message in messages], batch_id="b1")
    store = event_store.insert_events

    def refusing_again(db, batch, batch_id=None):
        # By event id: the worker stores enriched copies of the messages, not the messages.
        outcome = store(db, [m for m in batch if m["event_id"] != refused_again["event_id"]], batch_id)
        outcome.rejected = [(refused_again, "refused again")]
        return outcome

    monkeypatch.setattr(event_store, "insert_events", refusing_again)
    replay_ids = [f"{REPLAY_PREFIX}{name}" for name in ("a", "b")]
    for replay_id in replay_ids:  # queued as replay-dead queues them: not counted as accepted
        pipe = client.pipeline()
        ledger.record(pipe, replay_id, messages)
        pipe.execute()
    replays = [
        threading.Thread(target=store_batch, args=(letters_db, client, replay_id, messages))
        for replay_id in replay_ids
    ]
    for replay in replays:
        replay.start()
    for replay in replays:
        replay.join(60)
    assert letters_db[event_store.EVENTS].count_documents({}) == len(events)
    [letter] = list(dead_letters.dead_letters(letters_db))
    assert (letter["_id"], letter["error"], letter["batch_id"]) == (
        event_key(refused_again),
        "refused again",
        "b1",
    )
    totals = counters.totals(client)
    assert (totals.accepted, totals.persisted, totals.repeated) == (len(messages), len(events), 0)
