"""Redis and MongoDB clients, created unbound here and bound to an app in the factory.

Each client is opened lazily, on first use in a process, so that nothing is connected
before gunicorn or Celery forks: pymongo clients are not fork-safe.
"""

from __future__ import annotations

import os

import redis
from flask import Flask
from pymongo import MongoClient
from pymongo.database import Database

from app.config import Settings


class RedisExtension:
    """One Redis client per process, for health checks and counters."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._client: redis.Redis | None = None
        self._pid = 0

    def init_app(self, app: Flask, settings: Settings) -> None:
        self.close()  # a client of earlier settings must not serve these
        self._settings = settings
        app.extensions["redis"] = self

    @property
    def client(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            assert self._settings is not None, "RedisExtension used before init_app"
            timeout = self._settings.broker_timeout_seconds
            self._client = redis.Redis.from_url(
                self._settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            self._pid = os.getpid()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class MongoExtension:
    """One MongoClient per process; `db` is the database named by MONGO_URI."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._client: MongoClient[dict] | None = None
        self._pid = 0

    def init_app(self, app: Flask, settings: Settings) -> None:
        self.close()  # a client of earlier settings must not serve these
        self._settings = settings
        app.extensions["mongo"] = self

    @property
    def client(self) -> MongoClient[dict]:
        if self._client is None or self._pid != os.getpid():
            assert self._settings is not None, "MongoExtension used before init_app"
            timeout = self._settings.mongo_timeout_ms
            self._client = MongoClient(
                self._settings.mongo_uri,
                tz_aware=True,
                serverSelectionTimeoutMS=timeout,
                connectTimeoutMS=timeout,
                socketTimeoutMS=timeout * 2,
            )
            self._pid = os.getpid()
        return self._client

    @property
    def db(self) -> Database[dict]:
        return self.client.get_default_database(default="analytics")

    def close(self) -> None:
        """Close this process's client, e.g. in a parent process before it forks workers."""
        if self._client is not None:
            self._client.close()
            self._client = None


redis_store = RedisExtension()
mongo = MongoExtension()
