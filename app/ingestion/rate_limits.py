"""Ingestion's rate limits: per client address (an IPv6 client by its /64), then per site and
kind of sender, counted by the view once the body is read and the queue can take it, so a
request refused before (400, 403, 503 for back-pressure) uses no quota.

A site has one budget for pages on its domains and one for servers (app/access/origins.py):
anyone can send without an `Origin`, so a forger's requests of that kind, from however many
addresses, use up only the servers' budget, never the one its visitors' browsers share. (A
site that requires a server key refuses them outright.)

All the windows of a request are counted in one Redis script call: Flask-Limiter's request
hook and one call per window cost more than the rest of the endpoint's edge checks
(docs/decisions/one-call-rate-limits.md). The script counts in order and stops at the first
window over, as one `limits` fixed-window hit after another would: an address over its rate
uses none of its sites' quota. Other storages (`memory://`, Redis Sentinel or Cluster) count
with `limits` itself, a call a window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flask import Flask, Response, current_app
from flask.sansio.blueprints import BlueprintSetupState
from limits import RateLimitItem
from limits.storage import RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.commands.core import Script

from app.access.origins import request_sender
from app.client_address import request_limited_address
from app.ratelimit import parse_limits, storage_options, storage_uri, too_many_requests

logger = logging.getLogger(__name__)

PAUSE_SECONDS = 5.0
# KEYS: a request's windows in the order they are checked; ARGV: their expiries, then their
# limits. Each count is `limits`' own fixed window (incr_expire.lua).
COUNT_WINDOWS = b"""
for i, key in ipairs(KEYS) do
  local count = redis.call("incr", key)
  if count == 1 then
    redis.call("expire", key, ARGV[i])
  end
  if count > tonumber(ARGV[#KEYS + i]) then
    return i
  end
end
return 0
"""

Window = tuple[RateLimitItem, tuple[str, ...]]


class RateLimitedError(Exception):
    def __init__(self, item: RateLimitItem, reset_at: float) -> None:
        super().__init__(str(item))
        self.item, self.reset_at = item, reset_at


@dataclass
class IngestionLimits:
    strategy: FixedWindowRateLimiter
    address_items: list[RateLimitItem]
    site_items: list[RateLimitItem]
    paused_until: float = field(default=0.0)

    def __post_init__(self) -> None:
        storage = self.strategy.storage
        self.script: Script | None = (
            storage.get_connection().register_script(COUNT_WINDOWS) if type(storage) is RedisStorage else None
        )

    def windows(self, address: str, site_ids: Iterable[str], sender: str) -> list[Window]:
        by_address: list[Window] = [(item, ("address", address)) for item in self.address_items]
        by_site = [(item, ("site", site_id, sender)) for site_id in site_ids for item in self.site_items]
        return by_address + by_site

    def hit(self, address: str, site_ids: Iterable[str], sender: str) -> None:
        """Count one request from `address` carrying events of `site_ids` (distinct) from a
        `sender` of this kind; raise RateLimitedError for the first window over."""
        windows = self.windows(address, site_ids, sender)
        if not windows or time.monotonic() < self.paused_until:
            return
        try:
            over = self.first_over(windows)
            if over is None:
                return
            item, identifiers = over
            reset_at = self.strategy.get_window_stats(item, *identifiers).reset_time
        except Exception as error:  # fail open: see app/ratelimit.py
            self.paused_until = time.monotonic() + PAUSE_SECONDS
            logger.warning("ingestion rate limits paused: their storage failed: %s", error)
            return
        raise RateLimitedError(item, reset_at)

    def first_over(self, windows: list[Window]) -> Window | None:
        if self.script is None:
            return next((window for window in windows if not self.strategy.hit(window[0], *window[1])), None)
        storage = self.strategy.storage
        assert isinstance(storage, RedisStorage)
        keys = [storage.prefixed_key(item.key_for(*identifiers)) for item, identifiers in windows]
        args = [item.get_expiry() for item, _ in windows] + [item.amount for item, _ in windows]
        position = int(self.script(keys=keys, args=args))
        return windows[position - 1] if position else None


def hit_limits(site_ids: Iterable[str]) -> None:
    """Count this request against its client address's limit and each of its sites' for its
    kind of sender (each once)."""
    limits: IngestionLimits = current_app.extensions["ingestion_limits"]
    limits.hit(request_limited_address(), site_ids, request_sender().kind)


def handle_rate_limited(error: RateLimitedError) -> Response:
    return too_many_requests(error.item, error.reset_at)


def init_limits(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)  # BlueprintSetupState types it as the sansio App
    settings = app.extensions["settings"]
    storage = storage_from_string(storage_uri(settings), **storage_options())
    app.extensions["ingestion_limits"] = IngestionLimits(
        FixedWindowRateLimiter(storage),
        parse_limits(settings.ingestion_rate_limit),
        parse_limits(settings.site_rate_limit),
    )
    app.register_error_handler(RateLimitedError, handle_rate_limited)
