"""Rate limits counted in Redis: per client address and per site on ingestion, per key on
reporting; a request over one gets the contract's 429 with `Retry-After` and `RateLimit-*`.

Flask-Limiter counts fixed windows: one Redis script call per limit and request, the
cheapest of its strategies, at the price of up to twice the rate across a window's edge.
The site limit needs the parsed body, so the ingestion views apply it (`hit_sites`) with the
same limiter, counting each site of a request once.

A limiter whose Redis fails fails open: Flask-Limiter then counts in each process's memory
until its Redis answers again, and the site limits pause a few seconds. Refusing every
event because the counters are away would turn a small outage into a total one, and if the
queue is away too the enqueue answers its own 503.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.client_address import request_client_address
from app.errors import error_response
from app.settings import Settings

logger = logging.getLogger(__name__)

OFF = "off"
KEY_PREFIX = "analytics:ratelimit"
# A frozen Redis must leave the enqueue nearly all of a request's 2 s: the counters get a
# short timeout and no retry (redis-py would retry three times, with backoff).
STORAGE_TIMEOUT_SECONDS = 0.25
SITE_LIMITS_PAUSE_SECONDS = 5.0


def parse_limits(setting: str) -> list[RateLimitItem]:
    return [] if setting.strip().lower() in ("", OFF) else parse_many(setting)


def reporting_key() -> str:
    """The caller's key (a hash of its Authorization header, which is never stored), else its address."""
    authorization = request.headers.get("Authorization")
    if authorization:
        return "key:" + hashlib.sha256(authorization.encode()).hexdigest()[:32]
    return "address:" + request_client_address()


def exempt() -> bool:
    """Health checks and CORS preflights are never limited."""
    return request.path == "/health" or request.method == "OPTIONS"


class SiteRateLimitError(Exception):
    def __init__(self, item: RateLimitItem, reset_at: float) -> None:
        super().__init__(str(item))
        self.item, self.reset_at = item, reset_at


@dataclass
class SiteLimits:
    limiter: Limiter
    items: list[RateLimitItem]
    paused_until: float = field(default=0.0)

    def hit(self, site_ids: Iterable[str]) -> None:
        """Count one request for each of `site_ids` (distinct); raise SiteRateLimitError for
        the first one over."""
        if not self.items or time.monotonic() < self.paused_until:
            return
        try:
            for site_id in site_ids:
                for item in self.items:
                    strategy = self.limiter.limiter
                    if not strategy.hit(item, "site", site_id):
                        reset_at = strategy.get_window_stats(item, "site", site_id).reset_time
                        raise SiteRateLimitError(item, reset_at)
        except SiteRateLimitError:
            raise
        except Exception as error:  # fail open, like the address limits
            self.paused_until = time.monotonic() + SITE_LIMITS_PAUSE_SECONDS
            logger.warning("site rate limits paused: their Redis failed: %s", error)


def hit_sites(site_ids: Iterable[str]) -> None:
    """Count this request against the limit of each site it carries events of (each once)."""
    site_limits: SiteLimits = current_app.extensions["site_limits"]
    site_limits.hit(site_ids)


def too_many_requests(item: RateLimitItem, reset_at: float) -> Response:
    seconds = min(max(1, math.ceil(reset_at - time.time())), item.get_expiry())
    response = error_response(429, f"Rate limit exceeded ({item}): retry in {seconds} s")
    response.headers["Retry-After"] = str(seconds)
    response.headers["RateLimit-Limit"] = str(item.amount)
    response.headers["RateLimit-Remaining"] = "0"
    response.headers["RateLimit-Reset"] = str(seconds)
    return response


def handle_rate_limited(_: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions["address_limiter"]
    breached = limiter.current_limit
    assert breached is not None, "a rate limit was exceeded, so one is current"
    return too_many_requests(breached.limit, breached.reset_at)


def handle_site_limited(error: SiteRateLimitError) -> Response:
    return too_many_requests(error.item, error.reset_at)


def init_limits(app: Flask, settings: Settings, service: str) -> None:
    """Limit ingestion per client address (and, where the views call `hit_sites`, per
    site), or reporting per key."""
    if service == "ingestion":
        key_func, limits, site_limits = (
            request_client_address,
            settings.ingestion_rate_limit,
            settings.site_rate_limit,
        )
    else:
        key_func, limits, site_limits = reporting_key, settings.reporting_rate_limit, OFF
    # Passed to redis-py, which takes more than Flask-Limiter's annotation says.
    storage_options: Any = {
        "key_prefix": KEY_PREFIX,
        "socket_timeout": STORAGE_TIMEOUT_SECONDS,
        "socket_connect_timeout": STORAGE_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
    }
    limiter = Limiter(
        key_func=key_func,
        # Application limits share one count across the app's routes, /event and /events alike.
        application_limits=[limits] if parse_limits(limits) else [],
        application_limits_exempt_when=exempt,
        strategy="fixed-window",
        storage_uri=settings.rate_limit_storage_url or settings.redis_url,
        storage_options=storage_options,
        headers_enabled=False,  # the headers cost a Redis call; sent with 429s only
        swallow_errors=True,
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    app.extensions["address_limiter"] = limiter
    app.extensions["site_limits"] = SiteLimits(limiter, parse_limits(site_limits))
    app.register_error_handler(RateLimitExceeded, handle_rate_limited)
    app.register_error_handler(SiteRateLimitError, handle_site_limited)
