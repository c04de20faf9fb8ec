"""Settings read once from the environment (and a `.env` file) into one typed object.

Each field is one environment variable (its name upper-cased) and carries its default, its
help text and its group once, here: `.env.example` and docs/configuration.md are generated
from these fields by `make settings-docs` (tools/settings_doc.py), and a test fails when
they drift.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import load_dotenv
from flask import current_app

CONNECTIONS = "Connections (unset: `make services` / `make run` start local servers)"
INGESTION = "Ingestion"
WORKER = "Worker"
REPORTING = "Reporting"
ACCESS = "Access"
AUTH_MODES = ("keys", "open")
LOG_FORMATS = ("text", "json")
# The URL schemes REDIS_URL may use: those both redis-py's `from_url` (the ledger, counters,
# rollup streams) and the project's kombu transport (app/queue/transport.py) serve. Not
# Sentinel: redis-py has no URL for it, and kombu's needs a master name no setting carries.
REDIS_URL_SCHEMES = ("redis", "rediss")
LIMITS = "Rate limits and back-pressure"
PROCESSES = "Processes (also read by the Procfile and docker-compose.yml)"


# Days retention must exceed EVENT_MAX_AGE_DAYS by (see Settings.__post_init__).
RETENTION_MARGIN_DAYS = 7


def setting(default: Any, group: str, help: str) -> Any:
    """A settings field: its default, the group it is listed in, and what it means."""
    return field(default=default, metadata={"group": group, "help": help})


@dataclass(frozen=True)
class Settings:
    """Everything the Python processes are configured by; each field maps to one variable."""

    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        CONNECTIONS,
        "Celery broker, counters, ledger and rollup stream. Credentials and TLS go in the URL "
        "(`redis://user:password@host:6379/0`, `rediss://` for TLS); no other form is served "
        "(not Sentinel, not a Unix socket): a process refuses it when it starts.",
    )
    mongo_uri: str = setting(
        "mongodb://127.0.0.1:27017/analytics",
        CONNECTIONS,
        "Event store; the path names the database. Credentials and TLS go in the URL "
        "(`mongodb://user:password@host/analytics?tls=true`).",
    )
    mongo_timeout_ms: int = setting(5000, CONNECTIONS, "MongoDB server selection and connect timeout.")
    max_event_bytes: int = setting(
        64 * 1024, INGESTION, "Largest `POST /event` body in bytes, before and after gzip (413 beyond)."
    )
    max_batch_bytes: int = setting(
        1024 * 1024, INGESTION, "Largest `POST /events` body in bytes, before and after gzip (413 beyond)."
    )
    cors_allowed_origins: str = setting(
        "*",
        INGESTION,
        "Origins whose web pages may post events: `*` or a comma-separated list of exact origins "
        "such as `https://shop.example`.",
    )
    event_max_age_days: int = setting(
        30,
        INGESTION,
        "Oldest event timestamp accepted, in days before the server's time (400 beyond): room for "
        "late batches and offline clients, while a wrong clock cannot write into long-closed days. "
        "Raise it to import history.",
    )
    event_max_ahead_seconds: int = setting(
        300,
        INGESTION,
        "Latest event timestamp accepted, in seconds after the server's time (400 beyond): room "
        "for clients whose clock runs a little fast, while a far-future event cannot count as now.",
    )
    body_read_timeout_seconds: float = setting(
        10.0,
        INGESTION,
        "Longest time a request's whole body may take to arrive, from the first read of it; beyond "
        "it the client gets a 408 and the connection is closed, so a slow or stalled client cannot "
        "hold a connection. 10 s carries the largest batch over a 1 Mbit/s uplink.",
    )
    broker_timeout_seconds: float = setting(
        1.0,
        INGESTION,
        "How long a request waits for its events to be sent to the broker (Redis) before its 503 "
        "(never queued), and, once sent, for Redis's reply before a 504 (outcome unknown); "
        "ingestion reads that reply within half of it.",
    )
    group_commit_linger_ms: float = setting(
        10.0,
        INGESTION,
        "The longest a group of requests may wait for others to share its enqueue (one queued "
        "message for the worker), counted from its oldest request. A group waits only while "
        "another request is expected within it, judged from the recent gaps between requests, so "
        "a lone request goes at once; under load, longer windows make fewer, larger messages, "
        "which the worker stores with less CPU per event, at the cost of that wait in each answer. "
        "0 never waits (docs/decisions/adaptive-linger.md).",
    )
    worker_concurrency: int = setting(
        0,
        WORKER,
        "Processes per Celery worker; 0 means one per CPU the worker may use (a container's CPU limit).",
    )
    visits: int = setting(
        1,
        WORKER,
        "1: workers hand each stored event to the compactor, which keeps the `visits` collection "
        "(docs/sessions.md); 0: off, no visits are kept for the events a worker stores.",
    )
    broker_visibility_timeout: int = setting(
        300, WORKER, "Seconds until a message taken by a worker that died unacknowledged is delivered again."
    )
    task_retry_window_seconds: int = setting(
        900,
        WORKER,
        "How long a batch is retried on transient MongoDB errors before it is dead-lettered "
        "(long enough to ride out a MongoDB restart or failover).",
    )
    task_retry_backoff_max: int = setting(
        60, WORKER, "Longest wait between two retries, in seconds (exponential backoff with full jitter)."
    )
    ledger_grace_seconds: int = setting(
        120,
        WORKER,
        "An accepted batch neither stored, held by a worker nor queued for this long is sent again.",
    )
    ledger_check_seconds: int = setting(
        30, WORKER, "How often workers look for such batches (one worker per interval does it)."
    )
    compact_interval_seconds: float = setting(
        0.5,
        WORKER,
        "Shortest rest between two rounds of adding stored batches into the rollups `/stats` reads "
        "(one worker per shard at a time; while messages wait, it rests longer after a longer round).",
    )
    event_retention_days: int = setting(
        0,
        WORKER,
        "Raw events older than this many days are deleted, with the visits that began before then, "
        "a small batch at a time, by one worker "
        "at a time; rollups are kept, so `/stats` still answers for those days but "
        "`/stats/aggregated` and rebuilds do not. 0: keep raw events for ever. Must exceed "
        "EVENT_MAX_AGE_DAYS by more than 7 days (a process refuses less): an event's retry after "
        "its raw event is gone would be counted twice.",
    )
    retention_interval_seconds: int = setting(
        300, WORKER, "How often a worker deletes expired raw events (with EVENT_RETENTION_DAYS set)."
    )
    rollup_max_paths: int = setting(
        1000,
        WORKER,
        "Distinct paths one rollup (a site's hour, day or week) keeps, counted exactly; the views "
        "of later paths are counted apart as `other_paths`. Paths kept take at most 2 KiB each on "
        "average, so the default keeps a rollup's paths within 2 MiB.",
    )
    rollup_max_event_types: int = setting(
        32,
        WORKER,
        "Event types one rollup keeps, counted exactly; later types are counted together, apart. "
        "Each type kept holds its own users' bitmap, which grows with the site's users.",
    )
    rollup_max_dimension_values: int = setting(
        200,
        WORKER,
        "Values of each dimension (source, referrer, a utm field, device, browser, OS, country, each "
        "prop key) one rollup keeps, counted exactly; the views of later values are counted apart. "
        "Values kept take at most 256 bytes each on average, so the default keeps a dimension within "
        "50 KiB.",
    )
    rollup_max_prop_keys: int = setting(
        20,
        WORKER,
        "Prop keys one rollup breaks its events down by (each kept to ROLLUP_MAX_DIMENSION_VALUES "
        "values); the views of later keys are counted together, apart. With the nine other "
        "dimensions, the default keeps a rollup's values within 1.5 MiB.",
    )
    rate_limit_storage_url: str = setting(
        "",
        LIMITS,
        "Redis holding the rate-limit counters; empty: `REDIS_URL`. `memory://` counts in each "
        "process instead (limits then apply per process).",
    )
    ingestion_rate_limit: str = setting(
        "200/second",
        LIMITS,
        "Requests per client address (an IPv6 client: per /64) to `POST /event(s)` (`N/second`, "
        "`N/minute`, several separated by `;`; `off`: no limit).",
    )
    ingestion_event_rate_limit: str = setting(
        "10000/second",
        LIMITS,
        "Events per client address to `POST /event(s)` (a batch counts by its events): what one "
        "address can put into the shared queue. Each limit must admit a batch of 500 (`off`: no limit).",
    )
    site_rate_limit: str = setting(
        "1000/second",
        LIMITS,
        "Requests to one site, from all addresses, counted apart for its pages (`Origin` or "
        "`Referer`) and for servers (`off`: no limit).",
    )
    reporting_rate_limit: str = setting(
        "20/second",
        LIMITS,
        "Reporting requests per read key (once verified), or per address for requests without "
        "one (`off`: no limit).",
    )
    trusted_proxies: str = setting(
        "",
        LIMITS,
        "Comma-separated addresses or CIDRs of your reverse proxies. Only then is the client "
        "address read from `X-Forwarded-For` (its rightmost address not in this set).",
    )
    address_key: str = setting(
        "",
        LIMITS,
        "A secret, the same for every ingestion and reporting process (`openssl rand -hex 32`): "
        "rate limits count a client under a hash of its address keyed with it, so Redis never "
        "holds an address. Empty: the hash is unkeyed, and whoever reads Redis's files can find "
        "an IPv4 address by trying every one. `make` writes a random one into `.env` when none "
        "is set; docker compose requires one.",
    )
    queue_high_water: int = setting(
        50000,
        LIMITS,
        "Messages waiting in the Celery queue above which ingestion answers 503 and `/health` "
        "says why (0: no mark).",
    )
    redis_memory_high_water: float = setting(
        0.9,
        LIMITS,
        "Share of Redis's `maxmemory` above which ingestion answers 503, leaving workers the rest "
        "to drain the queue (1: refuse only when Redis itself does).",
    )
    cache_live_seconds: int = setting(
        2, REPORTING, "Longest life of a cached reporting answer whose period includes today; 0: no caching."
    )
    reporting_query_seconds: float = setting(
        10.0,
        REPORTING,
        "Longest time one reporting request may spend in MongoDB (sent as maxTimeMS); beyond it "
        "the answer is a 503 saying so, and the worker is free again.",
    )
    reporting_filter_max_events: int = setting(
        20000,
        REPORTING,
        "Most events a filtered question (or a `POST /api/v2/query` the rollups cannot answer) may "
        "read from the raw events of its period; a period holding more is refused with a 400 "
        "asking for a shorter one. Keep reading this many well within REPORTING_QUERY_SECONDS "
        "(docs/performance.md).",
    )
    cache_past_seconds: int = setting(
        300, REPORTING, "Longest life of a cached answer about past days only; 0: no caching."
    )
    auth_mode: str = setting(
        "keys",
        ACCESS,
        "`keys`: ingestion accepts only registered sites (`flask site add`) from their own domains, "
        "and reporting needs a read key (`flask key create`); `open`: neither, for a trusted "
        "internal network and tests (logged as a warning at start).",
    )
    registry_refresh_seconds: float = setting(
        5.0,
        ACCESS,
        "How often each ingestion process reloads the registered sites from MongoDB: a site changed "
        "or removed takes effect within this time. A site added is accepted at once: an unknown "
        "site makes a process reload, at most once a second.",
    )
    key_cache_seconds: float = setting(
        30.0,
        ACCESS,
        "How long a reporting process trusts a read key it has verified: a revoked key stops "
        "working within this time.",
    )
    secret_key: str = setting(
        "",
        ACCESS,
        "Signs the dashboard's session cookie (its sign-in with a read key); `make` writes a random "
        "one into `.env` when none is set. Every reporting process must have the same; changing it "
        "signs everyone out. Empty: the dashboard's sign-in is off (share links still work).",
    )
    ingestion_host: str = setting(
        "0.0.0.0",
        PROCESSES,
        "Address the ingestion service listens on: every interface, browsers post to it.",
    )
    reporting_host: str = setting(
        "127.0.0.1",
        PROCESSES,
        "Address the reporting service listens on; loopback unless you put it behind a proxy or "
        "open it on purpose (`0.0.0.0`).",
    )
    flower_host: str = setting(
        "127.0.0.1",
        PROCESSES,
        "Address Flower listens on; beyond loopback it refuses to start without `FLOWER_BASIC_AUTH`.",
    )
    redis_maxmemory: str = setting(
        "1gb",
        PROCESSES,
        "`maxmemory` of the Redis that `make services` and docker compose start, with "
        "`maxmemory-policy noeviction`: when full, Redis refuses writes (ingestion answers 503) "
        "instead of dropping queued events.",
    )
    ingestion_port: int = setting(3000, PROCESSES, "Port of the ingestion service.")
    reporting_port: int = setting(4000, PROCESSES, "Port of the reporting service.")
    flower_port: int = setting(5555, PROCESSES, "Port of Flower.")
    web_concurrency: int = setting(
        0,
        PROCESSES,
        "Gunicorn (gevent) worker processes per service; 0 means one per CPU the service may use "
        "(a container's CPU limit).",
    )
    log_level: str = setting("info", PROCESSES, "Log level of every process: debug, info, warning or error.")
    log_format: str = setting(
        "text",
        PROCESSES,
        "`text`, or `json`: one JSON object a line from every process, with the request id that "
        "follows an event from its request into the worker (docs/operations.md).",
    )
    flower_basic_auth: str = setting(
        "",
        PROCESSES,
        "`user:password` for Flower (comma-separate several). Empty: Flower has no login (allowed "
        "on loopback only), and its HTTP API answers 401.",
    )
    flower_unauthenticated_api: str = setting(
        "",
        PROCESSES,
        "Flower's own option: `true` lets its HTTP API answer without a login, and to every web "
        "page (`Access-Control-Allow-Origin: *`); so the launcher refuses it without `FLOWER_BASIC_AUTH`.",
    )

    def __post_init__(self) -> None:
        # The (site, event id) key of a stored event is the only record that it was stored: once
        # swept, a retry or a ledger resend of it would be stored and counted again. Retention
        # must outlast the oldest timestamp ingestion accepts, plus a margin for resends of
        # batches accepted near that age and held (workers down) for days.
        if 0 < self.event_retention_days <= self.event_max_age_days + RETENTION_MARGIN_DAYS:
            raise ValueError(
                f"EVENT_RETENTION_DAYS={self.event_retention_days} must be 0 or more than "
                f"EVENT_MAX_AGE_DAYS={self.event_max_age_days} + {RETENTION_MARGIN_DAYS} days: "
                "a retry of an event already deleted would be counted twice"
            )
        if self.auth_mode not in AUTH_MODES:
            raise ValueError(f"AUTH_MODE={self.auth_mode!r} must be one of: {', '.join(AUTH_MODES)}")
        if self.log_format not in LOG_FORMATS:
            raise ValueError(f"LOG_FORMAT={self.log_format!r} must be one of: {', '.join(LOG_FORMATS)}")
        scheme = self.redis_url.partition("://")[0] if "://" in self.redis_url else ""
        if scheme not in REDIS_URL_SCHEMES:
            # Only the scheme is named: the URL may hold a password.
            served = " or ".join(f"{name}://" for name in REDIS_URL_SCHEMES)
            raise ValueError(
                f"REDIS_URL must be a {served} URL, not {scheme + '://' if scheme else 'this'} "
                "(Redis Sentinel and Unix sockets are not supported)"
            )

        for name, url in (
            ("REDIS_URL", self.redis_url),
            ("MONGO_URI", self.mongo_uri),
            ("RATE_LIMIT_STORAGE_URL", self.rate_limit_storage_url),
        ):
            if unescaped_credentials(url):
                # The URL is not shown: it holds the password.
                raise ValueError(
                    f"{name}'s user name or password holds a character a URL cannot hold as it is "
                    "(@ / ? # or a % that starts no escape): percent-encode it there, or, under "
                    "docker compose, which puts the passwords into URLs as they are, use letters "
                    "and digits"
                )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment plus `.env`)."""
        if environ is None:
            load_dotenv()
            environ = os.environ
        values: dict[str, object] = {}
        for item in fields(cls):
            raw = environ.get(item.name.upper())
            if raw is None or raw == "":
                continue
            kind: type = type(item.default)
            try:
                values[item.name] = kind(raw)
            except ValueError as error:
                raise ValueError(f"{item.name.upper()}={raw!r} is not a valid {kind.__name__}") from error
        return cls(**values)  # type: ignore[arg-type]

    @property
    def worker_processes(self) -> int:
        return self.worker_concurrency or available_cpus()

    @property
    def web_processes(self) -> int:
        return self.web_concurrency or available_cpus()

    @staticmethod
    def variable_names() -> list[str]:
        """The environment variable names, in declaration order."""
        return [item.name.upper() for item in fields(Settings)]


def unescaped_credentials(url: str) -> bool:
    """Whether `url`'s user or password holds a character that ends it early or is read as
    another, unescaped: `@`, `/`, `?` and `#` leave an `@` after the address (in the path, or
    in a query of a URL whose address lost its credentials; `#` a fragment, which neither
    Redis's nor MongoDB's URLs have), a second `:`, a `%` that starts no escape, and in a
    MongoDB URL a `+` (pymongo reads it as a space). An `@` in the query of a URL that has its
    credentials is an option's value (Azure Cosmos DB's `appName=@account@`)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return (
        bool(parts.fragment)
        or parts.netloc.count("@") > 1
        or "@" in parts.path
        or ("@" in parts.query and "@" not in parts.netloc)
        or userinfo.count(":") > 1
        or (parts.scheme.startswith("mongodb") and "+" in userinfo)
        or re.search(r"%(?![0-9A-Fa-f]{2})", userinfo) is not None
    )


# cgroup v2's CPU quota of the process's group: "<quota> <period>" in microseconds, or "max".
CPU_QUOTA_FILE = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """The CPUs this process may use: those it may run on, bounded by its cgroup's quota (a
    container's `cpus:` limit), rounded up. `multiprocessing.cpu_count()` counts the host's."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = CPU_QUOTA_FILE.read_text().split()
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def current_settings() -> Settings:
    """The settings of the Flask app in the current app context."""
    settings: Settings = current_app.extensions["settings"]
    return settings
