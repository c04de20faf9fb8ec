"""Ingestion's rate limits: per client address (an IPv6 client by its /64), then per site and
kind of sender.

Every request costs its address's window, whatever its answer but one:
- a request the queue can take is counted by the view just before its enqueue, with its
  sites' windows;
- a request refused for what it carries (400, 403, 408, 413, 415) is counted once answered,
  on its address only: it cost a read, maybe an inflate, a parse and a validation, so it
  must not be free to repeat (a 1 MB gzip batch of an unregistered site); its sites' windows
  are their senders', and it was sent for none of them;
- a request refused for back-pressure (503) is not counted: the client did nothing wrong and
  must be able to retry after `Retry-After`, so an overload does not turn into 429s.
An address found over its rate is remembered by the process until its window ends: its
requests are then refused before their body is read (it is only thrown away, so that the
client reads the 429, as after any refusal), with no Redis call. Counting the address
before reading every body would cost an accepted request a second Redis call (its sites are
known only once its body is parsed); this costs none, and lets an address start at most its
rate, plus what it has in flight, of costly requests a window.

A site's windows count requests, as an address's do: a site's budget is shared by all its
senders, so a forger must spend a request of its own for each request of the site's it
refuses (two 500-event batches must not refuse a thousand visitors' beacons). What one
address can put into the shared queue is bounded by its own window of events
(INGESTION_EVENT_RATE_LIMIT), counted last, so that a request over any other limit is not
charged its events; a request over a limit is never counted in it. An event window smaller
than the largest batch would refuse such a batch forever: the service refuses to start.

A site has one budget for pages on its domains and one for servers (app/access/origins.py):
anyone can send without an `Origin`, so a forger's requests of that kind, from however many
addresses, use up only the servers' budget, never the one its visitors' browsers share. (A
site that requires a server key refuses them outright.)

Windows whose limit brings at least a request per IN_PROCESS_SECONDS (the defaults) are
counted in each process and reconciled with Redis in the background
(app/ingestion/local_counts.py): no Redis call a request, at the price of a bounded
overshoot. Windows past what a process holds are counted in Redis. A request with a smaller
limit among its windows (a limit of a few a minute, which every process would overshoot
before a sync) has all of them counted in Redis, exactly, as follows.

All the windows of such a request are counted in one Redis script call: Flask-Limiter's request
hook and one call per window cost more than the rest of the endpoint's edge checks
(docs/decisions/one-call-rate-limits.md). The script counts in order and stops at the first
window over, as one `limits` fixed-window hit after another would: an address over its rate
uses none of its sites' quota. Other storages (`memory://`, Redis Sentinel or Cluster) count
with `limits` itself, a call a window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial

from flask import Blueprint, Flask, Response, current_app, request
from flask.sansio.blueprints import BlueprintSetupState
from limits import RateLimitItem
from limits.storage import RedisStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.commands.core import Script

from app.access.origins import request_sender
from app.ingestion import local_counts
from app.ingestion.local_counts import LocalCounts
from app.ingestion.schemas import MAX_BATCH_EVENTS
from app.web.client_address import request_limited_address
from app.web.ratelimit import parse_limits, storage_options, storage_uri, too_many_requests

logger = logging.getLogger(__name__)

PAUSE_SECONDS = 5.0
# Addresses over their rate a process remembers; past this, it forgets those whose window ended.
MAX_OVER_ADDRESSES = 10_000
# Window keys an app's limits remember: a site's and an address's recent visitors' windows.
KEYS_CACHED = 8192
# KEYS: a request's windows in the order they are checked; ARGV: their expiries, then their
# limits, then what the request costs each. Each count is `limits`' own fixed window
# (incr_expire.lua, by a cost), never charged a request over it.
COUNT_WINDOWS = b"""
for i, key in ipairs(KEYS) do
  local cost = tonumber(ARGV[2 * #KEYS + i])
  if tonumber(redis.call("get", key) or "0") + cost > tonumber(ARGV[#KEYS + i]) then
    return i
  end
  if redis.call("incrby", key, cost) == cost then
    redis.call("expire", key, ARGV[i])
  end
end
return 0
"""

# A window, its identifiers, and what the request costs it (1, or the request's events).
Window = tuple[RateLimitItem, tuple[str, ...], int]
# A window over its limit, and when it ends (a time.time() instant).
Over = tuple[RateLimitItem, float]


class RateLimitedError(Exception):
    def __init__(self, item: RateLimitItem, reset_at: float) -> None:
        super().__init__(str(item))
        self.item, self.reset_at = item, reset_at


@dataclass
class IngestionLimits:
    strategy: FixedWindowRateLimiter
    address_items: list[RateLimitItem]
    site_items: list[RateLimitItem]
    event_items: list[RateLimitItem] = field(default_factory=list)
    paused_until: float = field(default=0.0)
    # Addresses this process found over their rate, until their window ends.
    over_addresses: dict[str, Over] = field(default_factory=dict)

    def __post_init__(self) -> None:
        storage = self.strategy.storage
        self.script: Script | None = None
        self.local: LocalCounts | None = None
        # Remembered by these limits, not the module, so that an app's storage goes with it:
        # building a key cost a request about as much as counting the window in process.
        self.window_key = lru_cache(maxsize=KEYS_CACHED)(partial(window_key, storage))
        if type(storage) is RedisStorage:
            connection = storage.get_connection()
            self.script = connection.register_script(COUNT_WINDOWS)
            self.local = LocalCounts(
                connection.register_script(local_counts.SYNC_WINDOWS),
                connection.register_script(local_counts.LEASE),
                self.pause,
            )

    def pause(self, error: Exception) -> None:
        """Fail open for a while: see app/web/ratelimit.py."""
        self.paused_until = time.monotonic() + PAUSE_SECONDS
        logger.warning("ingestion rate limits paused: their storage failed: %s", error)

    def windows(
        self, address: str, site_events: Mapping[str, int] | None = None, sender: str = ""
    ) -> list[Window]:
        """The windows of a request from `address` carrying `site_events` (events by site id)
        from a `sender` of this kind; without sites, its address's alone."""
        by_address: list[Window] = [(item, ("address", address), 1) for item in self.address_items]
        by_site: list[Window] = [
            (item, ("site", site_id, sender), 1) for site_id in site_events or {} for item in self.site_items
        ]
        events = sum((site_events or {}).values())
        by_events: list[Window] = [(item, ("events", address), events) for item in self.event_items if events]
        return by_address + by_site + by_events

    def count(self, windows: list[Window]) -> Over | None:
        """Count one request in `windows`; the first window over, if any. An address over its
        rate is remembered until its window ends."""
        if not windows or time.monotonic() < self.paused_until:
            return None
        keys = self.local_keys(windows)
        if self.local is not None and keys is not None and self.local.can_hold(keys):
            over_in_process = self.first_over_in_process(self.local, windows, keys)
            if over_in_process is None:
                return None
            (item, identifiers, _), reset_at = over_in_process
        else:
            try:
                over = self.first_over(windows)
                if over is None:
                    return None
                item, identifiers, _ = over
                reset_at = self.strategy.get_window_stats(item, *identifiers).reset_time
            except Exception as error:  # fail open: see app/web/ratelimit.py
                self.pause(error)
                return None
        if identifiers[0] == "address":
            self._remember_over(identifiers[1], (item, reset_at))
        return item, reset_at

    def known_over(self, address: str) -> Over | None:
        """The window `address` is over, if this process found it over and it has not ended."""
        over = self.over_addresses.get(address)
        if over is None or over[1] > time.time():
            return over
        self.over_addresses.pop(address, None)
        return None

    def _remember_over(self, address: str, over: Over) -> None:
        if len(self.over_addresses) >= MAX_OVER_ADDRESSES:
            now = time.time()
            self.over_addresses = {key: value for key, value in self.over_addresses.items() if value[1] > now}
            if len(self.over_addresses) >= MAX_OVER_ADDRESSES:
                self.over_addresses.clear()
        self.over_addresses[address] = over

    def local_keys(self, windows: list[Window]) -> list[str] | None:
        """The keys of `windows` if they are all counted in process, else None."""
        if self.local is None or not all(counted_in_process(item) for item, _, _ in windows):
            return None
        return self.keys(windows)

    def keys(self, windows: list[Window]) -> list[str]:
        """The Redis keys of `windows`, as `limits` names them."""
        return [self.window_key(item, identifiers) for item, identifiers, _ in windows]

    @staticmethod
    def first_over_in_process(
        local: LocalCounts, windows: list[Window], keys: list[str]
    ) -> tuple[Window, float] | None:
        """Count `windows` in order in this process, up to the first over; it and its end."""
        for window, key in zip(windows, keys, strict=True):
            item, _, cost = window
            ends = local.hit(key, item.amount, item.get_expiry(), cost)
            if ends is not None:
                return window, ends
        return None

    def first_over(self, windows: list[Window]) -> Window | None:
        if self.script is None:
            return next(
                (
                    window
                    for window in windows
                    # tested first: a window is not charged a request over it
                    if not self.strategy.test(window[0], *window[1], cost=window[2])
                    or not self.strategy.hit(window[0], *window[1], cost=window[2])
                ),
                None,
            )
        keys = self.keys(windows)
        args = [item.get_expiry() for item, _, _ in windows] + [item.amount for item, _, _ in windows]
        args += [cost for _, _, cost in windows]
        position = int(self.script(keys=keys, args=args))
        return windows[position - 1] if position else None


def window_key(storage: Storage, item: RateLimitItem, identifiers: tuple[str, ...]) -> str:
    """`limits`' Redis key of a window."""
    assert isinstance(storage, RedisStorage)  # the keys of the script and of local counts
    return storage.prefixed_key(item.key_for(*identifiers))


def counted_in_process(item: RateLimitItem) -> bool:
    """A limit of at least a request per IN_PROCESS_SECONDS: its overshoot stays small beside
    it."""
    return item.amount * local_counts.IN_PROCESS_SECONDS >= item.get_expiry()


def event_limits(setting: str) -> list[RateLimitItem]:
    """INGESTION_EVENT_RATE_LIMIT's windows; ValueError if one could never admit a batch of
    MAX_BATCH_EVENTS (it would answer its sender 429 forever)."""
    items = parse_limits(setting)
    small = [str(item) for item in items if item.amount < MAX_BATCH_EVENTS]
    if small:
        raise ValueError(
            f"INGESTION_EVENT_RATE_LIMIT={setting!r}: each limit must admit a batch of "
            f"{MAX_BATCH_EVENTS} events, not {', '.join(small)}"
        )
    return items


def limits_of_app() -> IngestionLimits:
    limits: IngestionLimits = current_app.extensions["ingestion_limits"]
    return limits


def hit_limits(site_events: Mapping[str, int]) -> None:
    """Count this request against its client address's limit (once), each of its sites' for
    its kind of sender, and its address's events; raise RateLimitedError for the first window
    over."""
    limits = limits_of_app()
    over = limits.count(limits.windows(request_limited_address(), site_events, request_sender().kind))
    if over is not None:
        raise RateLimitedError(*over)


def refuse_addresses_over_their_rate() -> None:
    """A `before_request` hook: a post from an address this process found over its rate is
    refused before its body is read, inflated or parsed."""
    limits = limits_of_app()
    if request.method == "POST" and limits.over_addresses:
        over = limits.known_over(request_limited_address())
        if over is not None:
            raise RateLimitedError(*over)


def count_refused_requests(response: Response) -> Response:
    """An `after_request` hook: a post refused for what it carries costs its address a
    request; the one that finds the address over its rate gets the 429."""
    status = response.status_code
    if request.method != "POST" or not 400 <= status < 500 or status == 429:
        return response
    limits = limits_of_app()
    over = limits.count(limits.windows(request_limited_address()))
    return response if over is None else too_many_requests(*over)


def handle_rate_limited(error: RateLimitedError) -> Response:
    return too_many_requests(error.item, error.reset_at)


def limit_rates(bp: Blueprint) -> None:
    """Count the rates of `bp`'s requests: its views call `hit_limits`; refusals are counted
    and over-rate addresses refused here."""
    bp.record_once(init_limits)
    bp.before_request(refuse_addresses_over_their_rate)
    bp.after_request(count_refused_requests)


def init_limits(state: BlueprintSetupState) -> None:
    app = state.app
    assert isinstance(app, Flask)  # BlueprintSetupState types it as the sansio App
    settings = app.extensions["settings"]
    storage = storage_from_string(storage_uri(settings), **storage_options())
    app.extensions["ingestion_limits"] = IngestionLimits(
        FixedWindowRateLimiter(storage),
        parse_limits(settings.ingestion_rate_limit),
        parse_limits(settings.site_rate_limit),
        event_limits(settings.ingestion_event_rate_limit),
    )
    app.register_error_handler(RateLimitedError, handle_rate_limited)
