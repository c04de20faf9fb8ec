"""Back-pressure: while the queue is longer than its high-water mark, or Redis nearly full,
ingestion turns events away with a 503 instead of queueing more than workers can drain.

One thread per process reads the queue's depth and Redis's memory ten times a second; a request
only compares the latest reading with the marks, which costs it no round trip. A reading
that failed, or is stale because Redis stopped answering, refuses nothing: the enqueue then
gives its own 503.

Redis runs with `maxmemory-policy noeviction`, so when full it refuses writes rather than
dropping queued events. Workers need to write to drain the queue (each message taken is
recorded as unacknowledged, each stored batch settles its ledger entry and appends its
tallies), so ingestion stops at REDIS_MEMORY_HIGH_WATER of `maxmemory`, leaving them the rest.

Clients are told which mark was passed, never the figures (the queue's depth, Redis's bytes):
those are the operator's, in `/health/pipeline` on the reporting service (`state`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.exceptions import RedisError

from app.queue import QUEUE

logger = logging.getLogger(__name__)

# What arrives between two readings must fit in the memory left above the mark: a request
# that no longer lingers for company comes at once, so readings come often.
INTERVAL_SECONDS = 0.1
# A reading older than this is from a Redis that stopped answering: it says nothing.
STALE_SECONDS = 2.0


@dataclass(frozen=True)
class Reading:
    depth: int
    used_memory: int
    maxmemory: int
    taken_at: float = field(default_factory=time.monotonic)


def read(client: redis.Redis) -> Reading:
    """The queue's depth and Redis's memory, in one round trip. A Redis that refuses INFO
    (some managed ones do) is read as one without a memory bound."""
    pipe = client.pipeline(transaction=False)
    pipe.llen(QUEUE)
    pipe.info("memory")
    depth, memory = pipe.execute(raise_on_error=False)
    if isinstance(depth, Exception):
        raise depth
    if isinstance(memory, Exception):
        return Reading(depth, 0, 0)
    return Reading(depth, int(memory["used_memory"]), int(memory.get("maxmemory", 0)))


BACKLOG = "Event queue backlog too long"
MEMORY = "Event queue nearly full"
NOT_ACCEPTED = "the event was not accepted, please retry later"


def passed_mark(reading: Reading, high_water: int, memory_high_water: float) -> str | None:
    """Which mark the reading is above (BACKLOG or MEMORY), or None."""
    if high_water and reading.depth >= high_water:
        return BACKLOG
    if reading.maxmemory and reading.used_memory >= memory_high_water * reading.maxmemory:
        return MEMORY
    return None


def overload(reading: Reading, high_water: int, memory_high_water: float) -> str | None:
    """Why the queue must take no more events now, as a client is told it, or None."""
    mark = passed_mark(reading, high_water, memory_high_water)
    return None if mark is None else f"{mark}: {NOT_ACCEPTED}"


def overload_detail(reading: Reading, high_water: int, memory_high_water: float) -> str | None:
    """The same with the figures, for operators, or None."""
    mark = passed_mark(reading, high_water, memory_high_water)
    if mark == BACKLOG:
        return f"{mark} ({reading.depth} messages waiting, high-water mark {high_water})"
    if mark == MEMORY:
        return f"{mark} (Redis uses {reading.used_memory} of {reading.maxmemory} bytes of memory)"
    return None


def state(client: redis.Redis, high_water: int, memory_high_water: float) -> dict[str, object]:
    """What `/health/pipeline` shows operators: why ingestion refuses events now (None: it
    does not), and Redis's memory against its `maxmemory` (0: no bound known)."""
    reading = read(client)
    return {
        "refusing": overload_detail(reading, high_water, memory_high_water),
        "redis_used_memory": reading.used_memory,
        "redis_maxmemory": reading.maxmemory,
    }


class QueueOverloadedError(Exception):
    """The queue is above a mark; the message says which."""


@dataclass
class QueueWatch:
    """The latest reading of this process, kept fresh by a thread of its own."""

    read: Callable[[], Reading]
    latest: Reading | None = None
    _pid: int = 0

    def overload(self, high_water: int, memory_high_water: float) -> str | None:
        """Why to refuse events, from the latest fresh reading; starts the watch if needed."""
        self._ensure_watching()
        reading = self.latest
        if reading is None or time.monotonic() - reading.taken_at > STALE_SECONDS:
            return None
        return overload(reading, high_water, memory_high_water)

    def refresh(self) -> None:
        """Take a reading now; a failed one leaves no reading."""
        try:
            self.latest = self.read()
        except RedisError as error:
            self.latest = None
            logger.debug("queue watch: no reading: %s", error)

    def _ensure_watching(self) -> None:
        # Started on first use in each process: threads do not survive gunicorn's fork, and
        # its gevent workers patch threading only after forking.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="queue-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # any failure: this thread is the process's only watch
                self.latest = None
                logger.exception("queue watch: reading failed")
            time.sleep(INTERVAL_SECONDS)
