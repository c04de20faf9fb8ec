"""Gunicorn settings shared by the ingestion and reporting services (`-b` sets the port)."""

import multiprocessing

from app.config import Settings

workers = Settings.from_env().web_concurrency or multiprocessing.cpu_count() * 2 + 1
worker_class = "sync"
keepalive = 5
timeout = 30
graceful_timeout = 10
errorlog = "-"
