"""The compactor's own code against the real servers (FerretDB locally): a round the server
refuses in part, and work that outlasts the compactor's lock. Each test runs the compactor in
this process, on a Redis database and a MongoDB database no worker reads, and compares the
rollups' answer (what /stats computes) with the raw events' (what /stats/aggregated does)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import redis
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from redis.exceptions import LockNotOwnedError

from app.rollups import compactor
from app.store import events as event_store
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tasks.persist import store_batch
from tools.factories import make_message, new_site_id

DAY = date(2025, 11, 15)
WEEK = (date(2025, 11, 10), date(2025, 11, 16))  # Monday to Sunday
# MongoDB refuses a document over 16 MiB; FerretDB stores one that size, but refuses a key
# with a dot in it.
OVERSIZE = "x" * (17 * 1024 * 1024)
REFUSED_KEY = "refused.key"
# Short enough that the slow steps below outlast it: the holder must keep its lock anyway.
SHORT_LOCK_SECONDS = 1
SLOW_STEP_SECONDS = 3


@pytest.fixture
def servers(redis_url: str, mongo_uri: str) -> Iterator[tuple[Database[dict[str, Any]], redis.Redis]]:
    """A MongoDB database and a Redis database of the session's servers that no worker uses."""
    client = redis.Redis.from_url(urlsplit(redis_url)._replace(path="/6").geturl())
    client.flushdb()
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    db = mongo.get_database(f"compactor_{uuid.uuid4().hex[:8]}")
    event_store.ensure_indexes(db)
    yield db, client
    mongo.drop_database(db.name)
    mongo.close()
    client.close()


def period(site_id: str, first: date, last: date) -> Period:
    return Period(site_id, first, last, ZoneInfo("UTC"))


def views(db: Database[dict[str, Any]], site_id: str, first: date, last: date) -> tuple[int, int]:
    """What the rollups count, and what the raw events do."""
    asked = period(site_id, first, last)
    return summary(db, asked, 10).total_views, summary_from_pipeline(db, asked, 10).total_views


def refusing_weeks_from(events: int, save: Any) -> Any:
    """`save_rollups`, with each week's rollup that counts `events` made one the server refuses."""

    def save_refused_weeks(database: Any, documents: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
        save(database, [refused_if_full(document) for document in documents], *args, **kwargs)

    def refused_if_full(document: dict[str, Any]) -> dict[str, Any]:
        if document["level"] == "week" and document["events"] >= events:
            return {**document, "pad": OVERSIZE, REFUSED_KEY: True}
        return document

    return save_refused_weeks


def test_a_round_the_server_refuses_in_part_counts_each_event_once(servers, monkeypatch):
    """Issue 24's scenario on the real servers: b0 and b1 in one site-hour, the week's rollup
    refused once it holds both. The day read 3 where the raw events say 2, and 4 after the
    set-aside entry was replayed."""
    db, client = servers
    site_id = new_site_id()
    store_batch(db, client, "b0", [make_message(site_id=site_id, user_id="u0")])
    store_batch(db, client, "b1", [make_message(site_id=site_id, user_id="u1")])
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    compactor.compact(db, client)
    assert (compactor.backlog(client), compactor.set_aside(client)) == (0, 1)
    assert views(db, site_id, DAY, DAY) == (2, 2)
    assert views(db, site_id, *WEEK) == (1, 2)  # b1's share of the week waits, set aside

    compactor.replay_set_aside(client)  # the fault not yet fixed: refused again
    compactor.compact(db, client)
    assert compactor.set_aside(client) == 1
    assert views(db, site_id, DAY, DAY) == (2, 2)

    monkeypatch.undo()  # the fault is fixed
    compactor.replay_set_aside(client)
    compactor.compact(db, client)
    assert compactor.set_aside(client) == 0
    assert views(db, site_id, DAY, DAY) == views(db, site_id, *WEEK) == (2, 2)


@pytest.fixture
def short_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compactor, "LOCK_SECONDS", SHORT_LOCK_SECONDS)


def store_three_users(db: Database[dict[str, Any]], client: redis.Redis) -> str:
    """Store a batch of three users' events on a new site; return the site."""
    site_id = new_site_id()
    store_batch(db, client, "b0", [make_message(site_id=site_id, user_id=f"u{n}") for n in range(3)])
    return site_id


def test_a_rebuild_whose_raw_read_outlasts_the_lock_keeps_it(servers, short_lock, monkeypatch):
    """`flask rebuild-rollups` on a large store failed with LockNotOwnedError after its raw read."""
    db, client = servers
    site_id = store_three_users(db, client)
    compactor.compact(db, client)
    events_between = event_store.events_between

    def slow_read(*args: Any) -> Any:
        time.sleep(SLOW_STEP_SECONDS)  # a store large enough that the read outlasts the lock
        return events_between(*args)

    monkeypatch.setattr(event_store, "events_between", slow_read)
    assert compactor.rebuild(db, client, site_id, DAY, DAY) == 3
    assert views(db, site_id, DAY, DAY) == views(db, site_id, *WEEK) == (3, 3)


def test_a_round_whose_adding_outlasts_the_lock_keeps_it(servers, short_lock, monkeypatch):
    """A round that outlasted its lock between its reads and its first save failed, every time."""
    db, client = servers
    site_id = store_three_users(db, client)
    add = compactor.Rollup.add

    def slow_add(self: Any, *args: Any, **kwargs: Any) -> None:
        time.sleep(SLOW_STEP_SECONDS / 3)  # a round wide enough that adding outlasts the lock
        add(self, *args, **kwargs)

    monkeypatch.setattr(compactor.Rollup, "add", slow_add)
    assert compactor.compact(db, client) == 1
    assert views(db, site_id, DAY, DAY) == (3, 3)


def test_a_holder_that_lost_its_lock_sends_no_more_writes(servers, monkeypatch):
    """On FerretDB, where a write cannot be fenced atomically, this check before each command
    is the fence: a holder whose lock expired writes nothing more."""
    db, client = servers
    site_id = new_site_id()
    store_batch(db, client, "b0", [make_message(site_id=site_id)])
    compactor.compact(db, client)
    store_batch(db, client, "b1", [make_message(site_id=site_id)])
    monkeypatch.setattr(rollup_store, "WRITES_PER_COMMAND", 1)  # the hour, day and week: 3 commands
    bulk_write = Collection.bulk_write
    sent = []

    def lose_the_lock_after_one_command(self: Any, requests: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == rollup_store.ROLLUPS:
            sent.append(requests)
            client.delete(f"{compactor.LOCK_PREFIX}:{compactor.shard_of(site_id)}")  # expired
        return bulk_write(self, requests, *args, **kwargs)

    monkeypatch.setattr(Collection, "bulk_write", lose_the_lock_after_one_command)
    with pytest.raises(LockNotOwnedError):
        compactor.compact(db, client)
    assert len(sent) == 1
    monkeypatch.undo()
    compactor.compact(db, client)
    assert views(db, site_id, DAY, DAY) == (2, 2)
