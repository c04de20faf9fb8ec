"""The sending side of the broker: what ingestion puts on the queue and the bookkeeping that
rides along with it. The worker side lives in `tasks/`; the two meet only in the names below.

Kombu's Redis transport keeps waiting messages in a list named after the queue (pushed on
the left, taken from the right, so the oldest is last) and messages taken by a worker but
not yet acknowledged in a hash, each as `[message, exchange, routing key]`.
"""

QUEUE = "celery"
# Kombu's Redis transport keeps taken, unacknowledged messages in this hash.
UNACKED_KEY = "unacked"
# Header ingestion adds to every message: when it was sent (epoch seconds).
ENQUEUED_AT = "enqueued_at"
# The worker's task that stores a batch, sent by name so that `app/` never imports `tasks/`.
PERSIST_TASK = "tasks.persist_events"
# The batch id of a batch `make replay-dead` queued from dead letters starts with this: the
# mark rides with the batch wherever it goes (a worker's retry, the ledger's resend, a
# redelivery), so the worker that stores it knows to remove the letters of what it stored.
REPLAY_PREFIX = "replay-"


def is_replay(batch_id: str | None) -> bool:
    """Whether batch `batch_id` was queued from dead letters (events stored before batches
    had ids have none)."""
    return batch_id is not None and batch_id.startswith(REPLAY_PREFIX)
