"""Gunicorn settings shared by the ingestion and reporting services (`-b` sets the port)."""

import multiprocessing

from app.config import Settings

# CPU-bound requests (JSON, validation, Celery's message building): about two processes
# per core keep every core busy while some wait on Redis or MongoDB.
workers = Settings.from_env().web_concurrency or multiprocessing.cpu_count() * 2 + 1
# gthread, not sync. Measured with `python -m bench.ingest --worker-class sync|gthread`
# (hey, 8 and 32 clients, POST /event, 2 cores shared with other load), neither won: both
# ranged from 200 to 530 requests/s from run to run, as the work is CPU-bound and the GIL
# serialises a worker's threads. What decides it: the ingestion service faces
# browsers directly (beacons, CORS), and a sync worker is held whole by one slow client and
# closes every connection after one request (it ignores keepalive), so each beacon costs a
# new TCP (and TLS) handshake. gthread keeps connections alive and lets a slow upload wait
# in one thread while the others serve. The app is thread-safe: redis-py, pymongo and
# Celery's producer pool are, and the marshmallow schemas hold no per-request state.
worker_class = "gthread"
threads = 4
# A browser's next beacon usually comes within seconds; behind a load balancer, set this
# above the balancer's idle timeout so it never reuses a connection gunicorn just closed.
keepalive = 5
# A request costs milliseconds; 30 s only catches a worker that is truly stuck.
timeout = 30
graceful_timeout = 10
errorlog = "-"
