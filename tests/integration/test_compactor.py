"""The compactor's own code against the real servers (FerretDB locally): a round the server
refuses in part, and work that outlasts the compactor's lock. Each test runs the compactor in
this process, on a Redis database and a MongoDB database no worker reads, and compares the
rollups' answer (what /stats computes) with the raw events' (what /stats/aggregated does)."""

from __future__ import annotations

import multiprocessing
import os
import signal
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
from pymongo.errors import AutoReconnect
from redis.exceptions import LockNotOwnedError

from app.rollups import compactor, generations
from app.store import events as event_store
from app.store import fenced, user_numbers
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tasks.persist import store_batch
from tests.unit.store.test_user_numbers import (
    assert_one_number_per_user_and_one_user_per_number,
    assign_concurrently,
    stored_numbers,
)
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
    user_numbers.ensure_indexes(db)
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

    compactor.replay_set_aside(db, client)  # the fault not yet fixed: refused again
    compactor.compact(db, client)
    assert compactor.set_aside(client) == 1
    assert views(db, site_id, DAY, DAY) == (2, 2)

    monkeypatch.undo()  # the fault is fixed
    compactor.replay_set_aside(db, client)
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
    monkeypatch.setattr(fenced, "WRITES_PER_COMMAND", 1)  # the hour, day and week: 3 commands
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


def mark_failing_for(batch_id: str, site_id: str, mark: Any) -> Any:
    """`mark_batches_applied` as a primary that steps down when asked to mark `batch_id` alone."""

    def mark_failing(database: Any, batch_ids: Any) -> None:
        batch_ids = list(batch_ids)
        if batch_ids == [compactor.marker(batch_id, compactor.shard_of(site_id))]:
            raise AutoReconnect("primary stepped down while marking")
        mark(database, batch_ids)

    return mark_failing


def test_a_share_set_aside_whose_batch_could_not_be_marked_counts_once(servers, monkeypatch):
    """b1's share of the week was set aside, then marking b1 failed; once the faults passed,
    the next round added b1 whole into the week, and the share, replayed, added it again."""
    db, client = servers
    site_id = new_site_id()
    store_batch(db, client, "b0", [make_message(site_id=site_id, user_id="u0")])
    store_batch(db, client, "b1", [make_message(site_id=site_id, user_id="u1")])
    monkeypatch.setattr(rollup_store, "save_rollups", refusing_weeks_from(2, rollup_store.save_rollups))
    monkeypatch.setattr(
        rollup_store,
        "mark_batches_applied",
        mark_failing_for("b1", site_id, rollup_store.mark_batches_applied),
    )
    with pytest.raises(AutoReconnect):
        compactor.compact(db, client)
    assert compactor.set_aside(client) == 1
    monkeypatch.undo()
    compactor.compact(db, client)
    compactor.replay_set_aside(db, client)
    compactor.compact(db, client)
    assert compactor.set_aside(client) == 0
    assert views(db, site_id, DAY, DAY) == views(db, site_id, *WEEK) == (2, 2)


def compact_then_die_after_the_first_write(
    redis_url: str, mongo_uri: str, database: str, parent: Any
) -> None:
    """In a process of its own: compact, tell the parent the generation moved and wait for
    its read, write the first slice, then die at once (SIGKILL: no `finally` runs)."""
    db: Database[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True).get_database(database)
    client = redis.Redis.from_url(redis_url)
    save = rollup_store.save_rollups

    def save_then_die(*args: Any, **kwargs: Any) -> None:
        parent.send("moved")
        parent.recv()
        save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    rollup_store.save_rollups = save_then_die
    compactor.compact(db, client)


def test_a_compactor_killed_after_a_write_leaves_no_cached_answer_behind(
    servers, short_lock, redis_url, mongo_uri
):
    """Killed between a slice's write and the generation's second move, a compactor left the
    generation where a reader had cached its answer from the rollups before the write."""
    db, client = servers
    site_id = new_site_id()
    store_batch(db, client, "b0", [make_message(site_id=site_id)])
    compactor.compact(db, client)
    store_batch(db, client, "b1", [make_message(site_id=site_id)])
    forked = multiprocessing.get_context("fork")
    ours, theirs = forked.Pipe()
    url = client.connection_pool.connection_kwargs
    holder = forked.Process(
        target=compact_then_die_after_the_first_write,
        args=(f"redis://{url['host']}:{url['port']}/{url['db']}", mongo_uri, db.name, theirs),
    )
    holder.start()
    assert ours.poll(timeout=30)
    ours.recv()
    cached_under = generations.generation(client, site_id)  # a reader caches its answer...
    assert views(db, site_id, DAY, DAY) == (1, 2)  # ...from the rollups before the write
    ours.send("write")
    holder.join(timeout=30)
    assert holder.exitcode == -signal.SIGKILL
    assert views(db, site_id, DAY, DAY)[0] == 2  # the slice was written: the day's rollup
    deadline = time.monotonic() + 10 * SHORT_LOCK_SECONDS
    while client.exists(f"{compactor.LOCK_PREFIX}:{compactor.shard_of(site_id)}"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    compactor.compact(db, client)  # the next holder of the shard
    assert generations.generation(client, site_id) != cached_under


def test_concurrent_assigners_number_each_user_once_on_the_real_server(servers):
    """On FerretDB `$inc` is not atomic: threads at once were given overlapping blocks."""
    db, _ = servers
    users_of_each = [[f"user-{n}" for n in range(start, start + 200)] for start in range(0, 400, 50)]
    answers = assign_concurrently(db, "site-a", users_of_each)
    every_user = {user for users in users_of_each for user in users}
    assert_one_number_per_user_and_one_user_per_number(answers, stored_numbers(db, "site-a", every_user))
