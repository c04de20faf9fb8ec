"""Gunicorn settings shared by the ingestion and reporting services (`-b` sets the port)."""

import gc
import multiprocessing

from app.config import Settings

# gevent, one process per core (WEB_CONCURRENCY overrides). Ingestion's cost is the Celery
# enqueue, and group commit (app/group_commit.py) shares one enqueue among the requests
# waiting in a process; gevent lets a process hold hundreds of them, where gthread holds
# only its thread count. More processes split the same clients into smaller groups, but a
# process saturates its core first. `make bench-ingest`, 8 clients, alternating runs on 2
# cores (2026-11-28): POST /event 1,145 / 1,154 requests/s with 1 process, 1,462 / 1,463 with
# 2; POST /events (100 events) 19,400 / 17,800 events/s against 32,400 / 27,900. (Runs in an
# earlier session had favoured 1 process, 1,068 against 732; alternating runs today do not.)
workers = Settings.from_env().web_concurrency or multiprocessing.cpu_count()
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
