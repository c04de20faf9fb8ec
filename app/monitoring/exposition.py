"""`/metrics`: the Prometheus text of this service's processes, with any collectors read at
scrape time."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class ThisProcess(Collector):
    """The metrics of this process alone (outside gunicorn: `flask run`, the unit tests)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for one scrape: every gunicorn process's values (multiprocess mode) or this
    process's, and `extra`."""
    scraped = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        multiprocess.MultiProcessCollector(scraped)
    else:
        scraped.register(ThisProcess())
    for collector in extra:
        scraped.register(collector)
    return scraped


def metrics_response(extra: Iterable[Collector] = ()) -> Response:
    return Response(generate_latest(registry(extra)), mimetype=CONTENT_TYPE_LATEST)
