"""Gunicorn settings shared by the ingestion and reporting services (`-b` sets the port)."""

from gevent import monkey

# Patched before anything else is imported: reading the settings imports the application
# (Celery, kombu, redis-py, pymongo) into the master, and modules imported before the gevent
# workers patch after forking would keep blocking sockets and locks.
monkey.patch_all()

import gc  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from typing import Any  # noqa: E402

# prometheus_client picks its multiprocess mode from this variable when the application first
# imports it, just below, so it is set here, before any import of the application. Each
# worker writes its metrics' values to files there, which `/metrics` adds up. Every master
# makes a new, empty directory of its own (inside the one PROMETHEUS_MULTIPROC_DIR names, if
# any, else in the system's temporary directory) and removes it when it exits: values an
# earlier master left, or another service sharing the setting, never count. A master reads
# this file again on SIGHUP, and a new master started by SIGUSR2 inherits the environment:
# the parent is remembered apart, and a master that made its directory keeps it.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PARENT = "ANALYTICS_METRICS_PARENT"
METRICS_OWNER = "ANALYTICS_METRICS_OWNER"
metrics_parent = os.environ.setdefault(METRICS_PARENT, os.environ.get(MULTIPROC_DIR, "")) or None
if os.environ.get(METRICS_OWNER) != str(os.getpid()):
    if metrics_parent:
        os.makedirs(metrics_parent, exist_ok=True)
    os.environ[MULTIPROC_DIR] = tempfile.mkdtemp(prefix="analytics-metrics-", dir=metrics_parent)
    os.environ[METRICS_OWNER] = str(os.getpid())

from app import logs  # noqa: E402
from app.ingestion import connection  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.web import server_errors  # noqa: E402

settings = Settings.from_env()
# gevent, one process per CPU it may use (WEB_CONCURRENCY overrides). Ingestion's cost is the Celery
# enqueue, and group commit (app/ingestion/group_commit.py) shares one enqueue among the
# requests waiting in a process; gevent lets a process hold hundreds of them, where gthread
# holds only its thread count. More processes split the same clients into smaller groups,
# but a process saturates its core first (docs/decisions/single-gunicorn-process.md).
workers = settings.web_processes
worker_class = "gevent"
worker_connections = 1000
# A browser's next beacon usually comes within seconds; behind a load balancer, set this
# above the balancer's idle timeout so it never reuses a connection gunicorn just closed.
# The gevent worker also bounds the reading of each request's line and headers by it (a
# slow or stalled head is dropped): it must stay above 0, which would leave heads unbounded.
keepalive = 5
# A request costs milliseconds; 30 s only catches a worker that is truly stuck.
timeout = 30
graceful_timeout = 10
logconfig_dict = logs.dict_config(settings.log_level, settings.log_format)
logging.captureWarnings(True)  # in the project's format, as every log line
accesslog = "-"
access_log_format = logs.access_format(settings.log_format)


def post_fork(server: Any, worker: Any) -> None:
    """Have the worker write gunicorn's own refusals in the contract's error body."""
    server_errors.install()


def on_exit(server: Any) -> None:
    """Remove this master's metrics directory."""
    shutil.rmtree(os.environ[MULTIPROC_DIR], ignore_errors=True)


def pre_request(worker: Any, req: Any) -> None:
    """Hand the request to the application, which may ask for its connection to be closed."""
    connection.serve(req)


def post_worker_init(worker: Any) -> None:
    """Start loading the registered sites, and exempt the loaded application's objects from
    garbage collection.

    The site registry (AUTH_MODE=keys, ingestion) loads in the background from now on, so a
    worker's first requests do not wait for MongoDB. A full collection walks every object in
    the process. Reporting allocates many short-lived objects per question, so collections
    come often, and each one walking the loaded code too showed as a long tail in a 30-day
    summary's latency.
    """
    registry = getattr(worker.wsgi, "extensions", {}).get("site_registry")
    if registry is not None:
        registry.start()
    gc.freeze()
