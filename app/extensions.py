"""The extensions every process shares, created unbound here and bound in the factory:
Redis and MongoDB clients, and the Celery app.

Each client is opened lazily, on first use in a process, so that nothing is connected
before gunicorn or Celery forks: pymongo clients are not fork-safe.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Generic, TypeVar

import redis
from celery import Celery, Task
from flask import Flask
from pymongo import MongoClient
from pymongo.database import Database
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.queue import transport
from app.settings import Settings
from celeryconfig import celery_config

Client = TypeVar("Client", redis.Redis, "MongoClient[dict[str, Any]]")


class ProcessClient(Generic[Client]):
    """One client per process, built from the settings of the app it was bound to."""

    name = ""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._client: Client | None = None
        self._pid = 0

    def init_app(self, app: Flask, settings: Settings) -> None:
        self.close()  # a client of earlier settings must not serve these
        self._settings = settings
        app.extensions[self.name] = self

    @property
    def client(self) -> Client:
        if self._client is None or self._pid != os.getpid():
            assert self._settings is not None, f"{type(self).__name__} used before init_app"
            self._client = self._connect(self._settings)
            self._pid = os.getpid()
        return self._client

    def close(self) -> None:
        """Close this process's client, e.g. in a parent process before it forks workers."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _connect(self, settings: Settings) -> Client:
        raise NotImplementedError


class RedisExtension(ProcessClient[redis.Redis]):
    """Redis for health checks, counters and the ledger."""

    name = "redis"
    options: ClassVar[dict[str, Any]] = {}

    def _connect(self, settings: Settings) -> redis.Redis:
        timeout = settings.broker_timeout_seconds
        return redis.Redis.from_url(
            settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout, **self.options
        )


class ProbeRedisExtension(RedisExtension):
    """Redis for questions answered quickly or not at all (ingestion's health, the queue
    watch): no retry, so a Redis that stopped answering costs one timeout, not four."""

    name = "probe_redis"
    options: ClassVar[dict[str, Any]] = {"retry": Retry(NoBackoff(), 0)}


class MongoExtension(ProcessClient["MongoClient[dict[str, Any]]"]):
    """MongoDB; `db` is the database named by MONGO_URI."""

    name = "mongo"

    def _connect(self, settings: Settings) -> MongoClient[dict[str, Any]]:
        timeout = settings.mongo_timeout_ms
        return MongoClient(
            settings.mongo_uri,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout,
            connectTimeoutMS=timeout,
            socketTimeoutMS=timeout * 2,
        )

    @property
    def db(self) -> Database[dict[str, Any]]:
        return self.client.get_default_database(default="analytics")


redis_store = RedisExtension()
probe_redis = ProbeRedisExtension()
mongo = MongoExtension()


class FlaskTask(Task):
    """A task that runs inside the app context of the Flask app its Celery app is bound to."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)


celery_app = Celery("analytics", task_cls=FlaskTask, set_as_current=False)


def celery_init_app(app: Flask, settings: Settings, consumes: bool = True) -> Celery:
    """Bind the Celery app to `app` and its settings, with the project's Redis transport and
    message serializer registered before Celery first connects. `consumes`: whether the
    process reads the queue (a worker) or only publishes to it (ingestion)."""
    transport.register()
    if celery_app.conf.broker_url not in (None, settings.redis_url):
        # Bound again, to another broker (tests make one app after another): drop the pooled
        # connections and producers of the last one, as Celery itself does after a fork.
        celery_app._after_fork()
    celery_app.conf.update(celery_config(settings, consumes))
    celery_app.flask_app = app
    celery_app.set_default()  # what `shared_task` binds the worker's tasks to
    app.extensions["celery"] = celery_app
    return celery_app
