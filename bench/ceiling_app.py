"""`POST /event` with its group's enqueue swapped out, for `bench.ingest --ceilings`: how
fast the rest of the endpoint lets row 3 go, measured in the same run as the other rows.

`BENCH_CEILING` picks what a group's enqueue becomes:
- `none`: nothing. Validation, group commit and the answer remain;
- `lpush`: one LPUSH of the group's events as JSON, fsynced like any write, with no Celery
  message, ledger entry or counters: the least a durable Redis write can cost a group.

Never part of the product: neither keeps what it accepts for a worker.
"""

from __future__ import annotations

import os

import orjson

from app import create_app
from app.extensions import redis_store
from app.ingestion import views as ingestion
from app.ingestion.group_commit import Messages

QUEUE = "bench:ceiling"

app = create_app("ingestion")


def no_enqueue(messages: Messages) -> None:
    """Accept the group without writing it anywhere."""


def one_lpush(messages: Messages) -> None:
    with app.app_context():
        redis_store.client.lpush(QUEUE, orjson.dumps(list(messages)))


ENQUEUES = {"none": no_enqueue, "lpush": one_lpush}
ingestion.committer.enqueue = ENQUEUES[os.environ["BENCH_CEILING"]]
