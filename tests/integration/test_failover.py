"""While MongoDB's primary changes (docs/failover.md): a real worker loses its connection in
the middle of storing a batch, and every accepted event is still stored and counted once.

A relay between the stack's processes and its MongoDB server (tests/integration/relay.py)
closes every connection at the insert of the third batch, either after the server stored it
(its answer lost: the worker cannot tell that the write happened) or before the server got it,
and for a few seconds closes any new connection at once, as while a replica set elects a new
primary. Meanwhile ingestion must keep accepting and reporting answer 503.
"""

import uuid
from typing import Any

import pytest
import requests
from pymongo import MongoClient

from tests.integration.client import TIMEOUT, get_stats, wait_for_views
from tests.integration.relay import Cut, Relay
from tests.integration.stack import DAY, Stack, distinct_events
from tools.factories import new_site_id

BATCH = 100
QUEUED = 6  # batches queued before the worker starts; the third is cut
DURING = 2  # batches sent while no server answers
DOWN_SECONDS = 8  # room for the checks below on a loaded machine
# Celery's retry waits at most TASK_RETRY_BACKOFF_MAX (2 s in the stack) after the outage;
# the rest is the worker storing, the compactor adding and a loaded machine.
RECOVERY_WAIT = 90


@pytest.fixture
def failover(run_dir):
    relays: list[Relay] = []

    def relay_to(port: int) -> int:
        relays.append(Relay(port))
        return relays[-1].port

    # One worker process stores the batches one after another, so the cut meets a known one;
    # at debug level the worker logs each task's retry.
    stack = Stack.start(
        run_dir / f"failover-{uuid.uuid4().hex[:8]}",
        mongo_front=relay_to,
        WORKER_CONCURRENCY="1",
        LOG_LEVEL="debug",
    )
    yield stack, relays[0]
    stack.stop()
    relays[0].close()


def post_batch(ingestion_url: str, events: list[dict[str, Any]]) -> int:
    return requests.post(f"{ingestion_url}/events", json={"events": events}, timeout=TIMEOUT).status_code


def stored_of(stack: Stack, site_id: str) -> int:
    client: MongoClient[dict[str, Any]]
    with MongoClient(stack.mongo_uri, serverSelectionTimeoutMS=2000) as client:
        return client.get_default_database().events.count_documents({"site_id": site_id})


@pytest.mark.parametrize("applied", [True, False], ids=["answer-lost", "write-lost"])
def test_a_worker_losing_mongodb_mid_batch_stores_every_accepted_event_once(failover, applied, figures):
    stack, relay = failover
    site_id = new_site_id()
    events = distinct_events(site_id, (QUEUED + DURING) * BATCH)
    batches = [events[start : start + BATCH] for start in range(0, len(events), BATCH)]
    queued, during = batches[:QUEUED], batches[QUEUED:]
    assert [post_batch(stack.ingestion_url, batch) for batch in queued] == [200] * QUEUED
    cut = relay.arm(Cut(nth=3, applied=applied, down_seconds=DOWN_SECONDS))
    stack.start_worker()
    assert cut.severed.wait(60), "the worker never stored a third batch"

    # While no server answers.
    stored_at_cut = stored_of(stack, site_id)
    statuses = [post_batch(stack.ingestion_url, batch) for batch in during]
    unasked = {"site_id": new_site_id(), "date": DAY}  # nothing cached
    read = requests.get(f"{stack.reporting_url}/stats", params=unasked, timeout=TIMEOUT)
    assert not cut.up_again.is_set(), "the outage ended before the test looked"
    assert stored_at_cut == (3 if applied else 2) * BATCH
    assert statuses == [200] * DURING
    assert read.status_code == 503
    assert read.json()["status"] == "error"

    # Once it answers again.
    accepted = [event["event_id"] for event in events]
    counts = stack.wait_until_stored(accepted, timeout=RECOVERY_WAIT)
    assert set(counts.values()) == {1}
    stats = wait_for_views(stack.reporting_url, site_id, DAY, len(accepted), timeout=RECOVERY_WAIT)
    assert stats["total_views"] == len(accepted)
    assert stats == get_stats(stack.reporting_url, site_id, DAY, "/stats/aggregated")
    health = stack.pipeline_health(site_id=site_id, date=DAY)
    total = len(accepted)
    assert health["events"] == {
        "accepted": total,
        "persisted": total,
        "repeated": 0,
        "dead": 0,
        "unaccounted": 0,
    }
    assert stack.worker is not None
    retries = stack.worker.log().count("retry: Retry in")
    assert retries >= 1, "the cut batch was never retried"
    figures.append(
        f"failover ({'answer' if applied else 'write'} lost): {stored_at_cut} events stored at the cut, "
        f"{total} accepted, each stored once, {retries} task retries"
    )
