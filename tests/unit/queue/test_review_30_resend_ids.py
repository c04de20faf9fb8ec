"""Review of issue #30 (review-30): "one event's path can be followed with grep" by its request
id. Fails on main as of 74d12d1: the ledger keeps a batch's messages but not the ids of the
requests that sent them, so a batch the ledger check sends again (the path where following
an event matters most) is published with none (`publish` reads the current ids, and the
check runs in no request), and the worker's lines for it name no request."""

import time

from app.monitoring import request_ids
from app.settings import Settings
from tasks import maintenance
from tests.unit.queue.test_ledger import record


def test_a_batch_sent_again_keeps_the_ids_of_the_requests_that_sent_it(counter_store, monkeypatch):
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
