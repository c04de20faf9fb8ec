"""The worker benchmark's own logic, without servers."""

from app.queue import ledger
from bench.worker import drained
from tools.factories import make_message


def test_a_message_taken_but_not_yet_recorded_as_unacknowledged_is_not_drained(counter_store):
    """Kombu takes a message off the queue before it records it as unacknowledged: in
    between, only the ledger still holds the batch."""
    pipe = counter_store.pipeline()
    ledger.record(pipe, "batch-1", [make_message()])
    pipe.execute()
    assert not drained(counter_store)
    pipe = counter_store.pipeline()
    ledger.settle(pipe, "batch-1")
    pipe.execute()
    assert drained(counter_store)
