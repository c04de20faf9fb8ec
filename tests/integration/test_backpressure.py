"""Overload refused politely: with no worker running, a flood ends in 503s (the queue's
high-water mark, Redis's memory bound), Redis stays up, and everything accepted is stored
once a worker starts; a Redis that stops answering gets clients their answer within 2 s."""

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.integration.client import TIMEOUT, post_event
from tests.integration.stack import Stack
from tools.factories import make_event, new_site_id
from tools.processes import wait_until

DAY = "2025-11-15"


@pytest.fixture
def start_stack(run_dir):
    stacks = []

    def start(**options):
        stacks.append(Stack.start(run_dir / f"backpressure-{uuid.uuid4().hex[:8]}", **options))
        return stacks[-1]

    yield start
    for stack in stacks:
        stack.redis.thaw()
        stack.stop()


def events(site_id, count, path_length=10):
    """Distinct events; long paths fill Redis with few events (fewer to check in MongoDB)."""
    return [
        make_event(
            site_id=site_id,
            event_id=str(uuid.uuid4()),
            path="/" + f"{n}-".ljust(path_length, "x"),
            timestamp=f"{DAY}T10:{n % 60:02d}:00Z",
        )
        for n in range(count)
    ]


def flood(stack, site_id, batches, size, path_length=10):
    """POST /events batches until `batches` are sent; (accepted event ids, 503 responses)."""
    accepted, refused = [], []
    for _ in range(batches):
        batch = events(site_id, size, path_length)
        response = requests.post(f"{stack.ingestion_url}/events", json=batch, timeout=TIMEOUT)
        if response.status_code == 200:
            accepted += [event["event_id"] for event in batch]
        else:
            assert response.status_code == 503, response.text
            refused.append(response)
    return accepted, refused


def assert_all_stored_after_a_worker_starts(stack, accepted):
    stack.start_worker()
    counts = stack.wait_until_stored(accepted, timeout=120)
    assert sorted(set(counts.values())) == [1]


def assert_refused_politely(response, words):
    assert response.headers["Retry-After"].isdigit()
    body = response.json()
    assert body["status"] == "error"
    assert words in body["message"]
    assert "not accepted" in body["message"]
    assert not re.search(r"\d", body["message"]), "the figures are for operators (/health/pipeline)"


def test_a_flood_above_the_high_water_mark_gets_503s_and_what_was_accepted_is_stored(start_stack):
    stack = start_stack(QUEUE_HIGH_WATER="40")
    site_id = new_site_id()
    accepted, refused = flood(stack, site_id, batches=80, size=5)
    assert refused, "the flood was never refused"
    assert_refused_politely(refused[-1], "backlog too long")
    assert 40 * 5 <= len(accepted) < 80 * 5
    assert stack.redis_client().ping()
    health = requests.get(f"{stack.ingestion_url}/health", timeout=TIMEOUT)
    assert health.status_code == 503
    assert "backlog too long" in health.json()["message"]
    operators = stack.pipeline_health()["backpressure"]["refusing"]
    assert "messages waiting, high-water mark 40" in operators
    assert_all_stored_after_a_worker_starts(stack, accepted)
    wait_until(lambda: requests.get(f"{stack.ingestion_url}/health", timeout=TIMEOUT).ok, 30, "health")
    assert post_event(stack.ingestion_url, make_event(site_id=site_id)).status_code == 200


def test_a_flood_stops_short_of_redis_memory_bound_so_a_worker_can_still_drain(start_stack):
    """Workers write to drain the queue, so ingestion leaves them the last tenth of maxmemory."""
    # Large enough that Redis's own fixed costs (clients' buffers, a starting worker's
    # queues) stay within its last tenth, as they do at the default 1 GB; small batches, so
    # that what arrives between two readings of the watch does too.
    stack = start_stack(redis_maxmemory="32mb", QUEUE_HIGH_WATER="0")
    site_id = new_site_id()
    accepted, refused = flood(stack, site_id, batches=900, size=10, path_length=2000)
    assert refused, "the flood was never refused"
    assert_refused_politely(refused[-1], "nearly full")
    assert stack.redis_client().ping()
    assert_all_stored_after_a_worker_starts(stack, accepted)


def test_when_redis_itself_is_full_events_get_503_never_accepted(start_stack):
    """REDIS_MEMORY_HIGH_WATER=1: Redis's own out-of-memory refusal reaches the client as a
    503. A Redis that full also refuses the writes workers drain with, until an operator
    raises its maxmemory (docs/operations.md).

    Once a write has taken Redis past its maxmemory, the queue watch's next reading shows it
    too and refuses first ("nearly full"): which of the two answers a given request depends
    on when the watch last read, so every refusal must be one of them."""
    stack = start_stack(redis_maxmemory="8mb", QUEUE_HIGH_WATER="0", REDIS_MEMORY_HIGH_WATER="1")
    site_id = new_site_id()
    accepted, refused = flood(stack, site_id, batches=300, size=10, path_length=2000)
    assert refused, "the flood was never refused"
    by_redis = [response for response in refused if "out of memory" in response.json()["message"]]
    assert by_redis, "Redis's own refusal never reached a client"
    for response in refused:
        assert_refused_politely(response, "out of memory" if response in by_redis else "nearly full")
    client = stack.redis_client()
    assert client.ping()
    client.config_set("maxmemory", "64mb")
    assert_all_stored_after_a_worker_starts(stack, accepted)


def test_a_frozen_redis_gets_clients_their_503_or_504_within_2_seconds_and_then_recovers(start_stack):
    """A 503 for events never sent to Redis; a 504 (outcome unknown) for those sent to it
    without a reply, which Redis may queue once it answers again."""
    stack = start_stack()
    stack.start_worker()
    site_id = new_site_id()
    accepted = [e["event_id"] for e in events(site_id, 0)]
    before = events(site_id, 20)
    assert all(post_event(stack.ingestion_url, event).status_code == 200 for event in before)
    accepted += [event["event_id"] for event in before]
    stack.redis.freeze()
    try:

        def timed_post(event):
            started = time.monotonic()
            response = post_event(stack.ingestion_url, event)
            return response, time.monotonic() - started

        during = events(site_id, 30)
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(timed_post, during))
    finally:
        stack.redis.thaw()
    for response, seconds in results:
        assert response.status_code in (503, 504), response.text
        assert response.headers["Retry-After"].isdigit()
        assert seconds < 2.0
    answered = {
        event["event_id"]: response.status_code for event, (response, _) in zip(during, results, strict=True)
    }
    refused = [event_id for event_id, status in answered.items() if status == 503]
    unknown = [event_id for event_id, status in answered.items() if status == 504]
    after = events(site_id, 20)

    def accepted_again():
        return post_event(stack.ingestion_url, after[0]).status_code == 200

    wait_until(accepted_again, 30, "ingestion to accept again", interval=0.5)
    assert all(post_event(stack.ingestion_url, event).status_code == 200 for event in after)
    accepted += [event["event_id"] for event in after]
    counts = stack.wait_until_stored(accepted, timeout=120)
    assert sorted(set(counts.values())) == [1]
    assert set(stack.stored_counts(refused).values()) <= {0}
    assert set(stack.stored_counts(unknown).values()) <= {0, 1}
