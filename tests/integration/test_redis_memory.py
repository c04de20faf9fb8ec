"""Redis's memory stays bounded whatever user ids clients send (issue #25 item 1): a site's
users are numbered in MongoDB, and the realtime sets keep bounded digests, so 20,000 distinct
256-character user ids through the whole pipeline leave Redis about as large as they found it.
The release before kept each id in a Redis hash forever, and in the realtime set for minutes."""

import secrets
import uuid
from datetime import UTC, datetime

import pytest
import redis
import requests

from tests.integration.client import TIMEOUT, wait_for_views
from tests.integration.stack import Stack
from tools.factories import make_event, new_site_id
from tools.processes import wait_until

USERS = 20_000
PER_BATCH = 500
# What the drained queue may still hold for them: the realtime sets, at most
# realtime.MAX_PER_SITE 8-byte digests each (about 115 bytes a member of a sorted set, 2.3 MB
# for both), nothing per user elsewhere. The release before grew by about 15 MB here.
BOUND_BYTES = 4 * 1024 * 1024


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


@pytest.fixture
def stack(run_dir):
    """A stack of its own: 20,000 events in the session's store would slow every later raw
    read of the other tests (FerretDB scans the collection for them)."""
    stack = Stack.start(run_dir / f"redis-memory-{uuid.uuid4().hex[:8]}")
    stack.start_worker()
    yield stack
    stack.stop()


def test_20000_distinct_long_user_ids_leave_redis_within_its_bound(stack):
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    site_id = new_site_id()
    now = datetime.now(UTC)
    day = now.date().isoformat()
    before = used_memory(client)
    for _ in range(USERS // PER_BATCH):
        batch = [
            make_event(site_id=site_id, user_id=secrets.token_hex(128), timestamp=now.isoformat())
            for _ in range(PER_BATCH)
        ]
        response = requests.post(f"{stack.ingestion_url}/events", json=batch, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
    answer = wait_for_views(stack.reporting_url, site_id, day, USERS, timeout=240)
    assert answer["unique_users"] == USERS
    wait_until(lambda: used_memory(client) - before < BOUND_BYTES, 30, "Redis back within its bound")
    assert used_memory(client) - before < BOUND_BYTES
