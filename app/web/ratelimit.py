"""Rate limits counted in Redis: per key on reporting (Flask-Limiter), per client address and
per site on ingestion (app/ingestion/rate_limits.py, large limits counted in each process and
synced with Redis in the background); a request over one gets the contract's 429 with
`Retry-After` and `RateLimit-*`.

Both count fixed windows: one increment per limit and request, the cheapest strategy, at
the price of up to twice the rate across a window's edge.

A limiter whose Redis fails fails open: Flask-Limiter then counts in each process's memory
until its Redis answers again, and ingestion's limits pause a few seconds. Refusing every
event because the counters are away would turn a small outage into a total one, and if the
queue is away too the enqueue answers its own 503.
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.access.keys import bearer_token, hash_key, key_cache
from app.settings import Settings, current_settings
from app.web.client_address import request_limited_address
from app.web.errors import error_response

OFF = "off"
KEY_PREFIX = "analytics:ratelimit"
# A frozen Redis must leave the enqueue nearly all of a request's 2 s: the counters get a
# short timeout and no retry (redis-py would retry three times, with backoff).
STORAGE_TIMEOUT_SECONDS = 0.25


def parse_limits(setting: str) -> list[RateLimitItem]:
    return [] if setting.strip().lower() in ("", OFF) else parse_many(setting)


def reporting_key() -> str:
    """The caller's bucket: its key's (a hash of the key, which is never stored), else its
    address's.

    A token has a bucket of its own only once this process has verified it as a key (with
    AUTH_MODE=open, which checks none, any token does): made-up tokens, each a fresh bucket
    otherwise, share their address's, and are counted there before their lookup in MongoDB.
    """
    token = bearer_token(request.headers.get("Authorization"))
    if token is not None and (current_settings().auth_mode == "open" or key_cache.known(token)):
        return "key:" + hash_key(token)[:32]
    return "address:" + request_limited_address()


def exempt() -> bool:
    """Health checks and CORS preflights are never limited."""
    return request.path == "/health" or request.method == "OPTIONS"


def too_many_requests(item: RateLimitItem, reset_at: float) -> Response:
    seconds = min(max(1, math.ceil(reset_at - time.time())), item.get_expiry())
    response = error_response(429, f"Rate limit exceeded ({item}): retry in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    response.headers["RateLimit-Limit"] = str(item.amount)
    response.headers["RateLimit-Remaining"] = "0"
    response.headers["RateLimit-Reset"] = str(seconds)
    return response


def handle_rate_limited(_: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions["reporting_limiter"]
    breached = limiter.current_limit
    assert breached is not None, "a rate limit was exceeded, so one is current"
    return too_many_requests(breached.limit, breached.reset_at)


def storage_options() -> Any:
    """For `limits`' storage, passed on to redis-py, which takes more than Flask-Limiter's
    annotation says."""
    return {
        "key_prefix": KEY_PREFIX,
        "socket_timeout": STORAGE_TIMEOUT_SECONDS,
        "socket_connect_timeout": STORAGE_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
    }


def storage_uri(settings: Settings) -> str:
    return settings.rate_limit_storage_url or settings.redis_url


def init_reporting_limits(app: Flask, settings: Settings) -> None:
    """Limit reporting per key, with Flask-Limiter's request hook."""
    limits = settings.reporting_rate_limit
    limiter = Limiter(
        key_func=reporting_key,
        # Application limits share one count across the app's routes.
        application_limits=[limits] if parse_limits(limits) else [],
        application_limits_exempt_when=exempt,
        strategy="fixed-window",
        storage_uri=storage_uri(settings),
        storage_options=storage_options(),
        headers_enabled=False,  # the headers cost a Redis call; sent with 429s only
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    app.extensions["reporting_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
