"""Queueing a batch: the message, its ledger entry and counters, and the serializer."""

import subprocess
import sys

import kombu.serialization
import pytest

from app.queue import counters, ledger, publish, transport
from tasks import persist
from tools.factories import make_message


@pytest.fixture
def worker_app(ingestion_app):
    """Tasks run in the app's context, as they do in a worker."""
    with ingestion_app.app_context():
        yield ingestion_app


def test_enqueued_events_count_as_accepted_unless_replayed(worker_app, counter_store):
    publish.enqueue_events([make_message(), make_message()])
    publish.enqueue_events([make_message()], replay=True)
    assert counters.totals(counter_store).accepted == 2


def test_a_stored_batch_is_settled_in_the_ledger(worker_app, counter_store, monkeypatch):
    recorded = []
    monkeypatch.setattr(publish, "publish", lambda messages, batch_id: recorded.append(batch_id))
    publish.enqueue_events([make_message()])
    assert ledger.outstanding(counter_store) == 1
    [batch_id] = recorded
    persist.persist_events.apply([[make_message()]], task_id=batch_id).get()
    assert ledger.outstanding(counter_store) == 0


def test_a_counter_failure_after_the_enqueue_does_not_fail_it(worker_app, redis_server, monkeypatch):
    """Through another transport than Redis (here tasks run eagerly) the ledger entry and
    counts are written apart, best effort: once the message is sent, the events are accepted."""
    published = []
    monkeypatch.setattr(publish, "publish", lambda messages, batch_id: published.append(messages))
    redis_server.connected = False
    publish.enqueue_events([make_message()])
    assert len(published) == 1


def test_a_batch_is_serialised_as_plain_json_that_kombus_decoder_reads_back():
    transport.register()
    messages = [make_message(), make_message()]
    body = [messages, {}, {}]
    content_type, encoding, payload = kombu.serialization.dumps(body, serializer=transport.ORJSON)
    assert content_type == "application/json"
    assert kombu.serialization.loads(payload, content_type, encoding, accept={"application/json"}) == [
        messages,
        {},
        {},
    ]
    # Replies to remote-control requests still use kombu's own json.
    assert kombu.serialization.registry.type_to_name[content_type] == "json"


def test_importing_the_code_changes_neither_kombus_serializers_nor_its_transports():
    """Registration happens where the Celery app is bound, never as a side effect of an import."""
    probe = (
        "import kombu.serialization, kombu.transport;"
        "import app, app.queue.publish, app.queue.transport, tasks.persist, reporting;"
        "print('orjson' in kombu.serialization.registry._encoders,"
        " kombu.transport.TRANSPORT_ALIASES['redis'])"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.split() == ["False", "kombu.transport.redis:Transport"]
