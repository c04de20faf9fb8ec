"""The broker transport (app/queue/transport.py): one redis-py client per channel, and a
batch's ledger entry and counts in the message's own transaction, over TLS too."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask
from kombu import Connection
from kombu.exceptions import OperationalError
from kombu.serialization import loads

from app import create_app
from app.ingestion.schemas import to_message
from app.queue import ENQUEUED_AT, QUEUE, counters, ledger
from app.queue import transport as redis_transport
from app.queue.publish import enqueue_events
from app.settings import Settings
from tasks.persist import persist_events
from tools.factories import make_event
from tools.local_services import redis_argv
from tools.processes import start_local_server


@pytest.fixture
def unread_redis_url(redis_url: str) -> str:
    """A database of the session's Redis that no worker reads, emptied."""
    url = urlsplit(redis_url)._replace(path="/7").geturl()
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def ingestion_app(unread_redis_url: str) -> Flask:
    """The ingestion app, publishing to the unread database (it needs no MongoDB)."""
    return create_app(
        "ingestion", Settings(redis_url=unread_redis_url, mongo_uri="mongodb://127.0.0.1:1/unused")
    )


def test_publishing_builds_one_redis_client_not_one_a_message(unread_redis_url, ingestion_app, monkeypatch):
    built: list[bool] = []  # whether each client built is for commands (not the consumer's)
    create_client = redis_transport.Channel._create_client

    def counted(channel: redis_transport.Channel, asynchronous: bool = False) -> redis.Redis:
        built.append(not asynchronous)
        return create_client(channel, asynchronous)

    monkeypatch.setattr(redis_transport.Channel, "_create_client", counted)
    with ingestion_app.app_context():
        for site in range(5):
            enqueue_events([to_message(make_event(site_id=f"site-{site}"))])

    assert redis.Redis.from_url(unread_redis_url).llen(QUEUE) == 5
    assert built.count(True) == 1


def test_a_channel_builds_a_new_client_for_a_new_pool_and_urls_keep_the_redis_scheme(unread_redis_url):
    with Connection(unread_redis_url) as connection:
        channel = connection.default_channel
        assert isinstance(channel, redis_transport.Channel)
        assert connection.as_uri().startswith("redis://")
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
            assert again is first
            first.lpush("probe", "1")
        channel._after_fork()  # what kombu does in a forked child: the old pool is dropped
        with channel.conn_or_acquire() as after:
            assert after is not first
            assert after.connection_pool is channel.pool
            assert after.lpop("probe") == b"1"


@pytest.fixture(scope="module")
def tls_redis_url(run_dir: Path) -> Iterator[str]:
    """A Redis of this module's own that speaks only TLS, as a `rediss://` URL that verifies
    its certificate."""
    if not (shutil.which("openssl") and shutil.which("redis-server")):
        pytest.skip("needs openssl and redis-server")
    tls_dir = run_dir / "tls"
    tls_dir.mkdir(exist_ok=True)
    cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip

    def tls_only(port: int, data_dir: Path) -> list[str]:
        return [*redis_argv(port, data_dir), "--port", "0", "--tls-port", str(port),
                "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]  # fmt: skip

    server = start_local_server("redis-tls", tls_only, run_dir)
    yield f"rediss://127.0.0.1:{server.port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}"
    server.stop()


def test_over_tls_a_batch_its_ledger_entry_and_its_counts_reach_redis_in_one_transaction(tls_redis_url):
    app = create_app("ingestion", Settings(redis_url=tls_redis_url, mongo_uri="mongodb://127.0.0.1:1/unused"))
    client = redis.Redis.from_url(tls_redis_url)
    client.flushdb()
    with app.app_context():
        enqueue_events([to_message(make_event()), to_message(make_event())])

    assert client.llen(QUEUE) == 1
    assert ledger.outstanding(client) == 1
    assert counters.totals(client).accepted == 2
    assert commands_run(client, "exec") == 1


def commands_run(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_a_batch_its_ledger_entry_and_its_counts_reach_redis_in_one_transaction(
    unread_redis_url, ingestion_app
):
    client = redis.Redis.from_url(unread_redis_url)
    with ingestion_app.app_context():
        enqueue_events([to_message(make_event())])  # connects, declares the queue
        client.config_resetstat()
        enqueue_events([to_message(make_event()), to_message(make_event())])

    assert client.llen(QUEUE) == 2
    assert ledger.outstanding(client) == 2
    assert counters.totals(client).accepted == 3
    assert commands_run(client, "exec") == 1
    assert [commands_run(client, name) for name in ("lpush", "zadd", "hset")] == [1, 1, 1]


def test_a_batch_whose_ledger_entry_cannot_be_written_is_not_queued_either(
    unread_redis_url, ingestion_app, monkeypatch
):
    def broken_record(*args: object) -> None:
        raise redis.ConnectionError("lost the connection mid-transaction")

    monkeypatch.setattr(ledger, "record", broken_record)
    with ingestion_app.app_context(), pytest.raises(OperationalError):
        enqueue_events([to_message(make_event())])

    client = redis.Redis.from_url(unread_redis_url)
    assert client.llen(QUEUE) == 0
    assert counters.totals(client).accepted == 0


def test_a_transaction_whose_reply_is_lost_is_not_sent_again_and_reports_its_outcome_unknown(
    unread_redis_url, ingestion_app, monkeypatch
):
    """Redis ran the EXEC, but the reply never came (a stall past the read timeout): sending
    it again would queue the batch twice, and "unreachable" would tell the client a lie."""
    execute_transaction = redis.client.Pipeline._execute_transaction

    def reply_lost(pipe: redis.client.Pipeline, *args: object) -> None:
        execute_transaction(pipe, *args)
        raise redis.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(redis.client.Pipeline, "_execute_transaction", reply_lost)
    with ingestion_app.app_context(), pytest.raises(redis_transport.PublishOutcomeUnknownError):
        enqueue_events([to_message(make_event())])
    monkeypatch.undo()

    client = redis.Redis.from_url(unread_redis_url)
    assert client.llen(QUEUE) == 1
    assert counters.totals(client).accepted == 1


def test_a_transaction_that_ran_with_a_failing_write_reports_its_outcome_unknown(
    unread_redis_url, ingestion_app
):
    """A write failing inside EXEC (here the ledger's script, on a key of the wrong type) does
    not undo the others: MULTI/EXEC has no rollback, so the batch is queued."""
    client = redis.Redis.from_url(unread_redis_url)
    client.set(ledger.ORDER_KEY, "not a sorted set")
    with ingestion_app.app_context(), pytest.raises(redis_transport.PublishOutcomeUnknownError):
        enqueue_events([to_message(make_event())])
    assert client.llen(QUEUE) == 1


def test_a_transaction_redis_refuses_before_running_it_is_not_queued(unread_redis_url, ingestion_app):
    """Redis at its maxmemory refuses the LPUSH while the transaction is built (EXECABORT):
    nothing ran, so the enqueue fails as not queued, never as an unknown outcome."""
    client = redis.Redis.from_url(unread_redis_url)
    with ingestion_app.app_context():
        enqueue_events([to_message(make_event())])  # connects before the limit is set
    maxmemory = client.config_get("maxmemory")["maxmemory"]
    client.config_set("maxmemory", 1)
    try:
        with ingestion_app.app_context(), pytest.raises(OperationalError):
            enqueue_events([to_message(make_event())])
    finally:
        client.config_set("maxmemory", maxmemory)
    assert client.llen(QUEUE) == 1


# Keeps Redis busy for ARGV[1] microseconds: every other client waits, as behind a slow fsync.
STALL = """
local now = redis.call('TIME')
local until_us = now[1] * 1000000 + now[2] + tonumber(ARGV[1])
repeat now = redis.call('TIME') until now[1] * 1000000 + now[2] >= until_us
"""


def test_a_publisher_gives_up_on_a_stalled_redis_within_half_a_broker_timeout_and_sends_once(
    unread_redis_url, ingestion_app
):
    """Ingestion's request waits one broker timeout for an enqueue it sent (app/ingestion/views.py):
    its publish must end by half of one, and Redis must run the transaction once, however late."""
    half_a_timeout = ingestion_app.extensions["settings"].broker_timeout_seconds / 2
    client = redis.Redis.from_url(unread_redis_url)
    with ingestion_app.app_context():
        enqueue_events([to_message(make_event())])  # the publisher's connection is made
        stall = threading.Thread(target=client.eval, args=(STALL, 0, int(3 * half_a_timeout * 1e6)))
        stall.start()
        time.sleep(half_a_timeout / 5)  # the stall has begun
        started = time.monotonic()
        with pytest.raises(redis_transport.PublishOutcomeUnknownError):
            enqueue_events([to_message(make_event())])
        gave_up_after = time.monotonic() - started
        stall.join(10)

    assert half_a_timeout * 0.8 <= gave_up_after < half_a_timeout * 1.6
    assert client.llen(QUEUE) == 2
    assert counters.totals(client).accepted == 2


def test_the_queued_message_is_a_persist_task_for_the_batch_the_ledger_records(
    unread_redis_url, ingestion_app
):
    messages = [to_message(make_event(site_id="site-a")), to_message(make_event(site_id="site-b"))]
    with ingestion_app.app_context():
        enqueue_events(messages)

    client = redis.Redis.from_url(unread_redis_url)
    envelope = json.loads(client.lpop(QUEUE))
    headers, properties = envelope["headers"], envelope["properties"]
    (batch_id,) = [member.decode() for member in client.zrange(ledger.ORDER_KEY, 0, -1)]
    assert (headers["task"], headers["id"], properties["correlation_id"]) == (
        persist_events.name,
        batch_id,
        batch_id,
    )
    assert headers["argsrepr"] == "[2 events]"
    assert isinstance(headers[ENQUEUED_AT], float)  # what the ledger's lost-batch check reads
    assert properties["body_encoding"] == "base64"
    args, kwargs, _ = loads(
        base64.b64decode(envelope["body"]), envelope["content-type"], envelope["content-encoding"]
    )
    assert (args, kwargs) == ([messages], {})
