"""The pipeline's state as operators read it: the end-to-end lag, and the gauges `/metrics`
computes from Redis and MongoDB at each scrape (what `/health/pipeline` shows)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from pymongo.database import Database
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.ingestion import backpressure
from app.queue import counters, ledger, snapshot
from app.rollups import compactor
from app.store import dead_letters

logger = logging.getLogger(__name__)


def lag_seconds(client: redis.Redis) -> float:
    """Seconds since the oldest accepted event that the rollups do not hold yet was accepted;
    0 when they hold everything."""
    pending = [
        moment for moment in (ledger.oldest_unsettled(client), compactor.oldest_pending(client)) if moment
    ]
    return round(max(0.0, time.time() - min(pending)), 3) if pending else 0.0


def age(moment: float | None) -> float:
    return 0.0 if moment is None else max(0.0, time.time() - moment)


class PipelineCollector(Collector):
    """Gauges of the whole pipeline, every site's, read when scraped. Redis and MongoDB are
    read apart: a scrape while one is away still answers, `analytics_pipeline_up` says 0 for
    that store and its gauges are left out, so that alerts on them see no data rather than a
    false zero, while the other store's gauges are still shown."""

    def __init__(self, client: Callable[[], redis.Redis], db: Callable[[], Database[Any]]) -> None:
        self._client = client
        self._db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "analytics_pipeline_up",
            "1 if the store answered this scrape's reads, by store.",
            labels=["store"],
        )
        read: list[Metric] = []
        for store, reader in (("redis", self._read_redis), ("mongodb", self._read_mongodb)):
            try:
                metrics = reader()
            except (RedisError, PyMongoError) as error:
                logger.warning("metrics: %s could not be read: %s", store, error)
                metrics = None
            up.add_metric([store], 0 if metrics is None else 1)
            read.extend(metrics or [])
        yield up
        yield from read

    def _read_mongodb(self) -> list[Metric]:
        return [
            GaugeMetricFamily(
                "analytics_dead_letters",
                "Events dead-lettered and not replayed.",
                value=dead_letters.count_dead_letters(self._db()),
            )
        ]

    def _read_redis(self) -> list[Metric]:
        client = self._client()
        queue = snapshot.snapshot(client)
        counts = counters.totals(client)
        reading = backpressure.read(client)
        events = CounterMetricFamily(
            "analytics_pipeline_events",
            "Events counted by the pipeline in Redis, every process's: accepted by ingestion, "
            "persisted by a worker, or repeated (a redelivery stored already).",
            labels=["stage"],
        )
        for stage in ("accepted", "persisted", "repeated"):
            events.add_metric([stage], getattr(counts, stage))
        gauges = {
            "queue_depth": ("Messages waiting in the queue.", queue.depth),
            "queue_unacknowledged": ("Messages workers hold.", queue.unacknowledged),
            "queue_oldest_age_seconds": (
                "Age of the oldest waiting message (0: none waits).",
                queue.oldest_age_seconds or 0.0,
            ),
            "batches_unsettled": ("Batches accepted and not yet stored.", ledger.outstanding(client)),
            "batches_oldest_unsettled_age_seconds": (
                "Age of the oldest batch accepted and not yet stored (0: none).",
                age(ledger.oldest_unsettled(client)),
            ),
            "lag_seconds": (
                "End-to-end lag: age of the oldest accepted event /stats does not count yet.",
                lag_seconds(client),
            ),
            "rollup_backlog": ("Stored events' deltas not yet in the rollups.", compactor.backlog(client)),
            "rollup_oldest_pending_age_seconds": (
                "Age of the oldest delta not yet in the rollups (0: none).",
                age(compactor.oldest_pending(client)),
            ),
            "rollup_set_aside": ("Rollup shares set aside after failing.", compactor.set_aside(client)),
            "redis_used_memory_bytes": ("Redis's used_memory.", reading.used_memory),
            "redis_maxmemory_bytes": ("Redis's maxmemory (0: unbounded or unknown).", reading.maxmemory),
        }
        return [events] + [
            GaugeMetricFamily(f"analytics_{name}", help_text, value=value)
            for name, (help_text, value) in gauges.items()
        ]
