"""Kombu's Redis transport, keeping one redis-py client per channel for its commands.

Kombu's Redis channel builds a new redis-py client for every command it sends outside the
consumer, each publish's LPUSH among them, and building one sets up its table of about 160
response callbacks: 0.18 ms, a sixth of an enqueue's CPU on the development machine. This
channel keeps one client for as long as its connection pool lives. The pool hands each
command a connection of its own, so threads and greenlets may share the client.

`register()` makes this the transport behind `redis://` URLs, so the URL scheme, which
Flower's broker view and Celery's banner read, stays `redis`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _command_client: redis.Redis | None = None

    @contextmanager
    def conn_or_acquire(self, client: redis.Redis | None = None) -> Iterator[redis.Redis]:
        if client:
            yield client
            return
        pool = self.pool  # a new pool after a fork or a reconnection: a new client for it
        if self._command_client is None or self._command_client.connection_pool is not pool:
            self._command_client = self._create_client()
        yield self._command_client


class Transport(kombu_redis.Transport):
    Channel = Channel


def register() -> None:
    """Serve `redis://` broker URLs with this transport; call before Celery connects."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
