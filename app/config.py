"""Settings read once from the environment (and a `.env` file) into one typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from dotenv import load_dotenv
from flask import current_app


@dataclass(frozen=True)
class Settings:
    """Everything the Python processes are configured by; each field maps to one variable."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    mongo_uri: str = "mongodb://127.0.0.1:27017/analytics"
    # Bytes of a `POST /event` body; larger bodies get a 413.
    max_event_bytes: int = 64 * 1024
    # How long a client waits for the broker before it gets a 503.
    broker_timeout_seconds: float = 1.0
    # Bytes of a `POST /events` body, before and after gzip; larger bodies get a 413.
    max_batch_bytes: int = 1024 * 1024
    # Origins whose web pages may post events: "*" or a comma-separated list of exact
    # origins such as "https://shop.example".
    cors_allowed_origins: str = "*"
    mongo_timeout_ms: int = 5000
    worker_concurrency: int = 2
    # A queued batch neither stored, held by a worker nor waiting in the queue for this long
    # is sent again (see app/ledger.py); workers check every LEDGER_CHECK_SECONDS.
    ledger_grace_seconds: int = 120
    ledger_check_seconds: int = 30
    # Gunicorn (gevent) worker processes per service; 0 means one per CPU core.
    web_concurrency: int = 0
    # Seconds before a message taken by a worker that died unacknowledged is redelivered.
    broker_visibility_timeout: int = 300
    # A batch that meets transient MongoDB errors is retried for this long before it is
    # dead-lettered (long enough to ride out a MongoDB restart or failover).
    task_retry_window_seconds: int = 900
    # Longest wait between two retries (exponential backoff with full jitter up to this).
    task_retry_backoff_max: int = 60
    # How often a worker adds stored batches into the rollups `/stats` reads (app/compactor.py).
    compact_interval_seconds: float = 0.5
    # Seconds reporting answers stay cached in Redis: answers whose range includes today (in
    # the asked time zone) or later, and answers about closed past ranges. 0 turns caching off.
    cache_live_seconds: int = 2
    cache_past_seconds: int = 300

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment plus `.env`)."""
        if environ is None:
            load_dotenv()
            environ = os.environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = environ.get(field.name.upper())
            if raw is None or raw == "":
                continue
            kind = type(getattr(cls, field.name))
            try:
                values[field.name] = kind(raw)
            except ValueError as error:
                raise ValueError(f"{field.name.upper()}={raw!r} is not a valid {kind.__name__}") from error
        return cls(**values)  # type: ignore[arg-type]

    @staticmethod
    def variable_names() -> list[str]:
        """The environment variable names, in declaration order."""
        return [field.name.upper() for field in fields(Settings)]


def current_settings() -> Settings:
    """The settings of the Flask app in the current app context."""
    settings: Settings = current_app.extensions["settings"]
    return settings
