"""Unit-test fixtures: Flask apps on mongomock with Celery tasks run in-process."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import fakeredis
import mongomock
import mongomock.collection
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database

from app import create_app, extensions, migrations
from app.extensions import mongo, redis_store
from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.settings import Settings
from app.store import event_sites, user_numbers
from app.store import events as event_store
from tasks.persist import store_batch
from tools.factories import FIXED_DATES_MAX_AGE_DAYS


def _ignoring_sort(add: Callable[..., Any]) -> Callable[..., Any]:
    def add_unsorted(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        assert sort is None, "mongomock cannot sort a bulk write"
        return add(self, *args, **kwargs)

    return add_unsorted


# mongomock 4.3 predates pymongo 4.20's `sort` argument of a bulk `ReplaceOne` and `UpdateOne`,
# which pymongo passes even when it is None: accept and ignore it, for every test of this tree.
_builder = mongomock.collection.BulkOperationBuilder
_builder.add_replace = _ignoring_sort(_builder.add_replace)  # type: ignore[method-assign]
_builder.add_update = _ignoring_sort(_builder.add_update)  # type: ignore[method-assign]


@pytest.fixture
def settings() -> Settings:
    """Open access (any site id, no keys): a test of access control asks for AUTH_MODE=keys."""
    return Settings(
        redis_url="redis://127.0.0.1:1/0",
        mongo_uri="mongodb://unit-test/analytics",
        auth_mode="open",
        event_max_age_days=FIXED_DATES_MAX_AGE_DAYS,  # tests post fixed 2025 dates
    )


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database[Any]]:
    """A fresh mongomock database that the apps' Mongo extension hands out."""
    client: mongomock.MongoClient = mongomock.MongoClient(tz_aware=True)
    # mongomock has no topology; reporting asks whether a server is known before it bounds a
    # question's time (reporting/views.py), and this one always answers.
    client.topology_description = SimpleNamespace(has_readable_server=lambda *args: True)  # type: ignore[misc, assignment]
    monkeypatch.setattr(extensions, "MongoClient", lambda *args, **kwargs: client)
    mongo.close()
    database = client.get_database("analytics")
    event_store.ensure_indexes(database)  # as a worker does when it starts
    event_sites.forget_seen()  # (sites recorded in another test's store)
    user_numbers.ensure_indexes(database)
    yield database
    mongo.close()


@pytest.fixture
def finds(db: Database[Any], monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The positional arguments (filter, projection) of every `find` made on the test's
    database from now on, in order."""
    collection_type = type(db[event_store.EVENTS])
    made: list[tuple[Any, ...]] = []
    real_find = collection_type.find

    def recording_find(self: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real_find(self, *args, **kwargs)

    monkeypatch.setattr(collection_type, "find", recording_find)
    return made


@pytest.fixture
def redis_server() -> fakeredis.FakeServer:
    """An in-memory Redis server; set `connected = False` to take it down."""
    return fakeredis.FakeServer()


@pytest.fixture
def counter_store(
    monkeypatch: pytest.MonkeyPatch, redis_server: fakeredis.FakeServer
) -> Iterator[fakeredis.FakeRedis]:
    """A client of `redis_server` that the apps' Redis extension hands out (Celery stays eager)."""
    client = fakeredis.FakeRedis(server=redis_server)
    monkeypatch.setattr(extensions.redis.Redis, "from_url", lambda *args, **kwargs: client)
    redis_store.close()
    yield client
    redis_store.close()


@pytest.fixture
def ingestion_app(
    settings: Settings, db: Database[Any], counter_store: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> Flask:
    app = create_app("ingestion", settings)
    # The process has one Celery app: run tasks eagerly for this test only.
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
    return app


@pytest.fixture
def ingestion(ingestion_app: Flask) -> FlaskClient:
    return ingestion_app.test_client()


@pytest.fixture
def reporting(settings: Settings, db: Database[Any], counter_store: fakeredis.FakeRedis) -> FlaskClient:
    return create_app("reporting", settings).test_client()


StoreEvents = Callable[..., None]


@pytest.fixture
def store(db: Database[Any], counter_store: fakeredis.FakeRedis) -> StoreEvents:
    """Store client events as a worker does, as one batch, and add them into the rollups: a
    worker of this release, started on a new store."""
    migrations.adopt_new_store(db)

    def store_events(events: list[dict[str, Any]], batch_id: str | None = None) -> None:
        store_batch(db, counter_store, batch_id or uuid.uuid4().hex, [to_message(e) for e in events])
        compactor.compact(db, counter_store)

    return store_events


@pytest.fixture
def migrated(db: Database[Any]) -> None:
    """A store with every migration step done, as `flask migrate-store` leaves a new one."""
    migrations.record_all(db, "nothing to migrate")
