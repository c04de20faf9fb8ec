"""Gunicorn settings shared by the ingestion and reporting services (`-b` sets the port)."""

import gc
import multiprocessing

from app.config import Settings

# gevent, and one process per two cores (WEB_CONCURRENCY overrides). Ingestion's cost is the
# Celery enqueue, and group commit (app/group_commit.py) shares one enqueue among the
# requests waiting in a process: the more concurrent requests a process holds, the bigger
# its groups. gevent lets one process hold hundreds; gthread holds only its thread count,
# and more processes spread the same clients thinner. Measured with `make bench-ingest`
# (2 cores, 8 clients): gevent x 1 process served POST /event at 1,068 requests/s with
# p99 11.6 ms, and 991 of 1,000 offered requests/s at p99 13.3 ms; gevent x 2 processes 732
# requests/s; gthread 5 x 4 threads 730. The other cores serve Redis and the rest.
workers = Settings.from_env().web_concurrency or max(1, multiprocessing.cpu_count() // 2)
worker_class = "gevent"
worker_connections = 1000
# A browser's next beacon usually comes within seconds; behind a load balancer, set this
# above the balancer's idle timeout so it never reuses a connection gunicorn just closed.
keepalive = 5
# A request costs milliseconds; 30 s only catches a worker that is truly stuck.
timeout = 30
graceful_timeout = 10
errorlog = "-"


def post_worker_init(worker: object) -> None:
    """Exempt the loaded application's objects from garbage collection.

    A full collection walks every object in the process. Reporting allocates many short-lived
    objects per question, so collections come often; without this, in-process measurements of
    a 30-day summary put p95 at 89 ms against a p50 of 51 ms, and with it at 52 ms.
    """
    gc.freeze()
