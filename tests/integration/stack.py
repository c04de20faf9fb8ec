"""A whole pipeline of its own for one fault test: servers, worker and services that the
test may kill, stop and restart without disturbing any other test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from pymongo import MongoClient
from redis import Redis

from tests.integration.client import TIMEOUT, post_event
from tools.factories import FIXED_DATES_ENV, make_event
from tools.local_services import mongo_argv, redis_argv
from tools.processes import (
    UNLIMITED_RATES,
    LocalServer,
    ManagedProcess,
    start_local_server,
    start_services,
    start_worker,
    stop_all,
    wait_until,
)

# Seconds before a dead worker's unacknowledged messages may be given back.
VISIBILITY_TIMEOUT = 5

# Short enough for a test to see a dead worker's messages come back and retries happen.
FAULT_SETTINGS = {
    **UNLIMITED_RATES,
    "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "TASK_RETRY_BACKOFF_MAX": "2",
    "MONGO_TIMEOUT_MS": "1000",
    "WORKER_CONCURRENCY": "2",
    "LEDGER_GRACE_SECONDS": "5",
    "LEDGER_CHECK_SECONDS": "2",
    # The Redis-stall test gives each request a path of its own, and a fast machine sends
    # more than the default cap in its window: keep them all, so /stats stays exact.
    "ROLLUP_MAX_PATHS": "50000",
    **FIXED_DATES_ENV,  # tests post fixed 2025 dates
}

# The day the fault tests' events fall on (their processes accept it: FIXED_DATES_ENV).
DAY = "2025-11-15"


def distinct_events(site_id: str, count: int) -> list[dict[str, Any]]:
    """`count` events of a site on DAY, each with an event id of its own."""
    return [
        make_event(
            site_id=site_id,
            event_id=str(uuid.uuid4()),
            path=f"/p{n % 7}",
            timestamp=f"{DAY}T{n % 24:02d}:{n % 60:02d}:00Z",
        )
        for n in range(count)
    ]


@dataclass
class Sent:
    accepted: list[str] = field(default_factory=list)
    refused: int = 0


@dataclass
class Stack:
    root: Path
    redis: LocalServer
    mongo: LocalServer
    env: dict[str, str]
    processes: list[ManagedProcess] = field(default_factory=list)
    worker: ManagedProcess | None = None
    ingestion_url: str = ""
    reporting_url: str = ""

    @classmethod
    def start(
        cls,
        root: Path,
        redis_maxmemory: str | None = None,
        redis_password: str = "",
        mongo_front: Callable[[int], int] | None = None,
        **settings: str,
    ) -> Stack:
        """`settings`: environment variables of the stack's processes, beyond FAULT_SETTINGS.
        `mongo_front`: given MongoDB's port, the port the processes reach it on (a relay of
        the test's); the test's own reads go to the server itself."""
        root.mkdir(parents=True, exist_ok=True)

        def redis_server(port: int, data_dir: Path) -> list[str]:
            argv = redis_argv(port, data_dir, maxmemory=redis_maxmemory)
            return [*argv, "--requirepass", redis_password] if redis_password else argv

        redis = start_local_server("redis", redis_server, root)
        mongo = start_local_server("mongo", mongo_argv, root)
        credentials = f":{redis_password}@" if redis_password else ""
        mongo_port = mongo_front(mongo.port) if mongo_front else mongo.port
        env = {
            **FAULT_SETTINGS,
            **settings,
            "REDIS_URL": f"redis://{credentials}127.0.0.1:{redis.port}/0",
            "MONGO_URI": f"mongodb://127.0.0.1:{mongo_port}/faults",
        }
        stack = cls(root, redis, mongo, env)
        for app, (process, url) in start_services(
            {"ingestion": "ingestion", "reporting": "reporting"}, env, root
        ).items():
            stack.processes.append(process)
            setattr(stack, f"{app}_url", url)
        return stack

    def start_worker(self) -> ManagedProcess:
        self.worker = start_worker(f"worker-{uuid.uuid4().hex[:6]}", self.env, self.root)
        self.processes.append(self.worker)
        return self.worker

    def stop(self) -> None:
        """The services and workers together, then the servers they used (a worker's warm
        shutdown gives its prefetched messages back to Redis)."""
        stop_all(self.processes)
        stop_all([self.redis.process, self.mongo.process])

    def send(self, events: Iterable[dict[str, Any]]) -> Sent:
        """POST each event; note which the service accepted and which it refused with a 503."""
        sent = Sent()
        for event in events:
            response = post_event(self.ingestion_url, event)
            if response.status_code == 200:
                sent.accepted.append(event["event_id"])
            else:
                assert response.status_code == 503, response.text
                sent.refused += 1
        return sent

    def stored_counts(self, event_ids: list[str]) -> dict[str, int]:
        """How many documents each event id has in MongoDB."""
        client: MongoClient[dict[str, Any]]
        with MongoClient(self.mongo_uri, serverSelectionTimeoutMS=2000) as client:
            rows: Iterable[dict[str, Any]] = client.get_default_database().events.aggregate(
                [
                    {"$match": {"event_id": {"$in": event_ids}}},
                    {"$group": {"_id": "$event_id", "n": {"$sum": 1}}},
                ]
            )
            counts = {row["_id"]: row["n"] for row in rows}
        return {event_id: counts.get(event_id, 0) for event_id in event_ids}

    def wait_until_stored(self, event_ids: list[str], timeout: float = 90) -> dict[str, int]:
        def all_stored() -> bool:
            try:
                return all(self.stored_counts(event_ids).values())
            except Exception:  # MongoDB may still be restarting
                return False

        wait_until(all_stored, timeout, f"{len(event_ids)} events stored", interval=0.5)
        return self.stored_counts(event_ids)

    @property
    def mongo_uri(self) -> str:
        """The stack's database on the server itself, past any relay."""
        return f"mongodb://127.0.0.1:{self.mongo.port}/faults"

    def redis_client(self) -> Redis:
        return Redis.from_url(self.env["REDIS_URL"])

    def pipeline_health(self, **params: str) -> dict[str, Any]:
        response = requests.get(f"{self.reporting_url}/health/pipeline", params=params, timeout=TIMEOUT)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
