"""The ledger finds batches lost between the broker and the workers, and only those."""

import json
import time

from app.monitoring import request_ids
from app.queue import ENQUEUED_AT, QUEUE, UNACKED_KEY, ledger
from app.settings import Settings
from tasks import maintenance


def record(client, batch_id, sent_at, messages=({"event_id": "e"},)):
    pipe = client.pipeline()
    ledger.record(pipe, batch_id, list(messages))
    pipe.execute()
    client.zadd(ledger.ORDER_KEY, {batch_id: sent_at})


def queue_message(client, task_id, enqueued_at):
    client.lpush(QUEUE, json.dumps({"headers": {"id": task_id, ENQUEUED_AT: enqueued_at}}))


def hold_message(client, task_id):
    client.hset(UNACKED_KEY, f"tag-{task_id}", json.dumps([{"headers": {"id": task_id}}, "", "celery"]))


def test_a_settled_batch_is_never_lost(counter_store):
    record(counter_store, "b1", time.time() - 999)
    pipe = counter_store.pipeline()
    ledger.settle(pipe, "b1")
    pipe.execute()
    assert ledger.lost_batches(counter_store, grace_seconds=10) == {}
    assert ledger.outstanding(counter_store) == 0


def test_a_batch_within_its_grace_period_is_not_lost(counter_store):
    record(counter_store, "b1", time.time() - 5)
    assert ledger.lost_batches(counter_store, grace_seconds=10) == {}


def test_an_old_batch_neither_queued_nor_held_is_lost_with_its_events(counter_store):
    record(counter_store, "b1", time.time() - 60, [{"event_id": "e1"}, {"event_id": "e2"}])
    assert ledger.lost_batches(counter_store, grace_seconds=10) == {
        "b1": ledger.LostBatch([{"event_id": "e1"}, {"event_id": "e2"}], request_ids=())
    }


def test_a_batch_held_by_a_worker_is_not_lost(counter_store):
    record(counter_store, "b1", time.time() - 60)
    hold_message(counter_store, "b1")
    assert ledger.lost_batches(counter_store, grace_seconds=10) == {}


def test_a_batch_sent_after_the_oldest_queued_message_may_still_be_queued(counter_store):
    now = time.time()
    queue_message(counter_store, "b0", enqueued_at=now - 100)
    record(counter_store, "b1", now - 50)  # behind b0 in a backlog: not lost
    record(counter_store, "b2", now - 200)  # before the oldest queued message: it left the queue
    assert set(ledger.lost_batches(counter_store, grace_seconds=10)) == {"b2"}


def test_lost_batches_are_sent_again_once_per_grace_period_by_one_worker(counter_store, monkeypatch):
    sent = []
    monkeypatch.setattr(maintenance, "publish", lambda messages, batch_id: sent.append(batch_id))
    settings = Settings(ledger_grace_seconds=10, ledger_check_seconds=30)
    record(counter_store, "b1", time.time() - 60)
    assert maintenance.resend_lost_batches(counter_store, settings) == 1
    assert sent == ["b1"]
    counter_store.delete(ledger.LOCK_KEY)
    assert maintenance.resend_lost_batches(counter_store, settings) == 0  # grace restarted


def test_only_one_worker_checks_per_interval(counter_store, monkeypatch):
    monkeypatch.setattr(maintenance, "publish", lambda messages, batch_id: None)
    record(counter_store, "b1", time.time() - 60)
    assert ledger.try_lock(counter_store, 30)
    assert maintenance.resend_lost_batches(counter_store, Settings(ledger_grace_seconds=10)) == 0


def settle(client, batch_id):
    pipe = client.pipeline()
    ledger.settle(pipe, batch_id)
    pipe.execute()


def test_a_settled_batch_is_remembered_until_no_message_of_it_can_come_back(counter_store, monkeypatch):
    monkeypatch.setattr(maintenance, "publish", lambda messages, batch_id: None)
    settings = Settings(broker_visibility_timeout=300, task_retry_backoff_max=60)
    record(counter_store, "b1", time.time())
    settle(counter_store, "b1")
    assert ledger.delivery(counter_store, "b1").settled
    maintenance.resend_lost_batches(counter_store, settings)
    assert ledger.delivery(counter_store, "b1").settled
    long_ago = time.time() - maintenance.settled_memory_seconds(settings) - 1
    counter_store.zadd(ledger.SETTLED_KEY, {"b1": long_ago})
    counter_store.delete(ledger.LOCK_KEY)
    maintenance.resend_lost_batches(counter_store, settings)
    assert not ledger.delivery(counter_store, "b1").settled


def test_a_batch_marked_lettered_is_no_longer_once_settled(counter_store):
    ledger.mark_lettered(counter_store, "b1")
    assert ledger.delivery(counter_store, "b1") == ledger.Delivery(settled=False, lettered=True)
    settle(counter_store, "b1")
    assert ledger.delivery(counter_store, "b1") == ledger.Delivery(settled=True, lettered=False)


def test_a_batch_sent_again_keeps_the_ids_of_the_requests_that_sent_it(counter_store, monkeypatch):
    """The ledger check runs in no request: the ids its message carries are the ledger's."""
    sent: dict[str, tuple[str, ...]] = {}
    monkeypatch.setattr(
        maintenance, "publish", lambda messages, batch_id: sent.update({batch_id: request_ids.current()})
    )
    token = request_ids.enter("r-lost")
    try:
        record(counter_store, "b1", time.time() - 60)  # queued by request r-lost, then lost
    finally:
        request_ids.leave(token)
    assert maintenance.resend_lost_batches(counter_store, Settings(ledger_grace_seconds=10)) == 1
    assert sent == {"b1": ("r-lost",)}
    assert request_ids.current() == ()


def test_settling_a_batch_forgets_its_request_ids(counter_store):
    token = request_ids.enter("r-1")
    try:
        record(counter_store, "b1", time.time())
    finally:
        request_ids.leave(token)
    assert counter_store.hexists(ledger.REQUEST_IDS_KEY, "b1")
    settle(counter_store, "b1")
    assert not counter_store.hexists(ledger.REQUEST_IDS_KEY, "b1")
