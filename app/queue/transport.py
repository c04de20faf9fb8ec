"""Kombu's Redis transport, with one redis-py client per channel and writes that can ride
along with a message.

Kombu's Redis channel builds a new redis-py client for every command it sends outside the
consumer, each publish's LPUSH among them, and building one sets up its whole table of
response callbacks, a measurable share of an enqueue's CPU (docs/decisions/README.md). This
channel keeps one client for as long as its connection pool lives. The pool hands each
command a connection of its own, so threads and greenlets may share the client.

`published_with(writes)` puts the next message published in the same context into one
MULTI/EXEC transaction with `writes`: ingestion's ledger entry and counters reach Redis with
the message, in one round trip and one fsync; a transaction cut off before its EXEC leaves
none of them. Once the transaction is sent, a lost or late reply leaves its fate unknown
(Redis may run it when it answers again), and so does a write failing inside it (the others
ran): that publish raises PublishOutcomeUnknownError, which kombu does not retry, rather than
an error that would mean "not queued".

`register()` makes this the transport behind `redis://` and `rediss://` (TLS) URLs, so the
URL scheme, which Flower's broker view and Celery's banner read, stays as given; it also
registers the `orjson` serializer the persist messages are written with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import kombu.serialization
import orjson
import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

from app.settings import REDIS_URL_SCHEMES


class PublishOutcomeUnknownError(Exception):
    """A message's transaction was sent to Redis, but no reply came: it may or may not be queued."""


class Alongside:
    """Redis writes to send in one transaction with the next message published."""

    def __init__(self, write: Callable[[redis.client.Pipeline], None]) -> None:
        self.write = write
        self.sent = False  # True once a transaction carried them: the caller need not


_alongside: ContextVar[Alongside | None] = ContextVar("alongside", default=None)


@contextmanager
def published_with(writes: Alongside) -> Iterator[None]:
    """Send `writes` with the message published inside this block, if it goes through Redis.

    Other transports, and tasks run eagerly, leave `writes.sent` False.
    """
    token = _alongside.set(writes)
    try:
        yield
    finally:
        _alongside.reset(token)


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

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        writes = _alongside.get()
        if writes is None or writes.sent:
            super()._put(queue, message, **kwargs)
            return
        # kombu's own _put, with the LPUSH inside a transaction.
        priority = self._get_message_priority(message, reverse=False)
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=True)
            pipe.lpush(self._q_for_pri(queue, priority), dumps(message))
            writes.write(pipe)
            # Connect before sending anything (the pipeline runs on the connection it is given,
            # and gives it back to the pool), so that a failure to connect, which queued
            # nothing (kombu may retry it), is told apart from a failure once the EXEC was sent.
            pipe.connection = client.connection_pool.get_connection()
            try:
                # Errors of commands that ran come back as replies: MULTI/EXEC has no rollback,
                # so the others ran. An error raised is Redis refusing the whole transaction
                # before running any of it (EXECABORT: out of memory, a read-only replica...),
                # or the reply lost.
                replies = pipe.execute(raise_on_error=False)
            except (redis.ConnectionError, redis.TimeoutError) as error:
                raise PublishOutcomeUnknownError(f"no reply from Redis to the enqueue: {error}") from error
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed:
            raise PublishOutcomeUnknownError(f"Redis ran the enqueue, but a write of it failed: {failed[0]}")
        writes.sent = True


class Transport(kombu_redis.Transport):
    Channel = Channel


# The persist task's arguments are plain JSON, which orjson writes many times faster than
# kombu's json. The content type stays application/json: any worker reads the message with
# kombu's own json decoder.
ORJSON = "orjson"


def register() -> None:
    """Serve the broker URLs of every scheme REDIS_URL may use (`redis://`, `rediss://`) with
    this transport and make the `orjson` serializer known; call before Celery connects
    (idempotent)."""
    for scheme in REDIS_URL_SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
    kombu.serialization.register(ORJSON, orjson.dumps, None, content_type="application/json")
    # register() also made "orjson" the name kombu answers application/json requests in (the
    # remote-control replies Flower asks for); those keep kombu's json, which encodes more types.
    kombu.serialization.registry.type_to_name["application/json"] = "json"
