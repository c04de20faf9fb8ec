"""Rate-limit windows counted in each process, reconciled with Redis in the background, as
Kong's rate-limiting plugin does with `sync_rate`, each process admitting on its own at
most a lease of a window's limit before Redis hears of it.

A request is counted in memory, with no Redis call, while what this process counted since
its last sync stays within the window's lease (LEASE_FRACTION of its limit, at least 1) and
the window's total as Redis last told it, plus that, within its limit. A request that would
pass the lease asks Redis instead: one script call adds what the process counted, and the
request's cost only if the total then stays within the limit (exact, as a count made in
Redis). A thread a process sends what it counted every SYNC_SECONDS, the windows with new
hits only, a chunk of them a script call, and takes back their totals, the other processes'
counts included, and when each window ends. The same keys and fixed windows as the counts
made in Redis (`limits`' own), so both kinds agree.

So a window passes its limit by at most what each process admitted without asking: the
overshoot is at most processes x the lease, whatever the rate offered and however long a
sync takes (a 500-event batch is larger than a lease of a 1,000/s window: it is counted in
Redis, exactly). Limits of less than a request per IN_PROCESS_SECONDS are counted in Redis
on every request (app/ingestion/rate_limits.py), and so are the windows a process cannot
hold once it holds MAX_WINDOWS: a forger's many addresses must not make a sync grow without
end. A request over a limit is not counted in it: a refused batch is not charged its events.

A window with no new hits is never sent: a sync neither creates a key nor extends its
expiry, so a window ends in Redis and here as a counted one does. Its end here is dated
from the send, never later than Redis's.

A failed sync pauses the limits (the caller's `on_failure`): failing open, as the counts
made in Redis do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from redis.commands.core import Script

logger = logging.getLogger(__name__)

# How often a process sends its counts.
SYNC_SECONDS = 0.1
# A limit is counted in process when it brings at least a request per this interval.
IN_PROCESS_SECONDS = 0.1
# Windows a process holds; past this, the ended ones are dropped and new ones go to Redis.
MAX_WINDOWS = 10_000
# Windows a script call sends: one call must not hold Redis for long.
SYNC_CHUNK = 1_000
# The share of a window's limit a process admits before asking Redis.
LEASE_FRACTION = 0.05
# KEYS: the windows counted since the last sync; ARGV: what was counted in each, then their
# expiries. Returns each window's total and its milliseconds left.
SYNC_WINDOWS = b"""
local totals = {}
for i, key in ipairs(KEYS) do
  local counted = tonumber(ARGV[i])
  local total = redis.call("incrby", key, counted)
  if total == counted then
    redis.call("expire", key, ARGV[#KEYS + i])
  end
  totals[i] = {total, redis.call("pttl", key)}
end
return totals
"""
# KEYS: a window; ARGV: what the process counted since its last sync, the request's cost,
# the limit, the expiry. Returns the total, 1 if the request was counted, the milliseconds left.
LEASE = b"""
local key, counted, cost = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local total = tonumber(redis.call("get", key) or "0")
local admitted = total + counted + cost <= tonumber(ARGV[3]) and 1 or 0
local added = counted + admitted * cost
if added > 0 then
  total = redis.call("incrby", key, added)
  if total == added then
    redis.call("expire", key, ARGV[4])
  end
end
return {total, admitted, redis.call("pttl", key)}
"""


@dataclass
class _Count:
    total: int  # the window's count as Redis last told it
    unsent: int  # counted here since the last sync
    ends: float  # time.time() when the window ends
    expiry: int  # the window's length, seconds


class LocalCounts:
    """The windows of one process. `on_failure` is called with the error of a failed sync."""

    def __init__(self, script: Script, lease: Script, on_failure: Callable[[Exception], None]) -> None:
        self._script = script
        self._lease = lease
        self._on_failure = on_failure
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        # Threads and locks do not survive a fork: the child starts afresh.
        reset = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: (method := reset()) and method())

    def _reset(self) -> None:
        self._lock, self._counts, self._thread, self._stop = threading.Lock(), {}, None, None

    def hit(self, key: str, limit: int, expiry: int, cost: int) -> float | None:
        """Count `cost` in the window `key`; when it ends (a time.time() instant) if that
        passes its `limit`, else None."""
        with self._started():
            now = time.time()
            count = self._counts.get(key)
            if count is None or count.ends <= now:
                count = self._counts[key] = _Count(0, 0, now + expiry, expiry)
            if count.total + count.unsent + cost > limit:
                return count.ends
            if count.unsent + cost <= max(1, int(limit * LEASE_FRACTION)):
                count.unsent += cost
                return None
            counted, count.unsent = count.unsent, 0
        return self._ask(key, count, counted, cost, limit)

    def _ask(self, key: str, count: _Count, counted: int, cost: int, limit: int) -> float | None:
        """Send a window's count with a request past its lease; when the window ends if Redis
        found the request over, else None."""
        sent_at = time.time()
        try:
            total, admitted, left_ms = self._lease(keys=[key], args=[counted, cost, limit, count.expiry])
        except Exception as error:
            self._on_failure(error)
            return None
        with self._started():
            self._update(key, count, int(total), int(left_ms), sent_at)
        return None if int(admitted) else count.ends

    def _update(self, key: str, count: _Count, total: int, left_ms: int, sent_at: float) -> None:
        """Take Redis's total and end of a window sent at `sent_at`. Under the lock."""
        # A window that ended while the reply was on its way was replaced by another.
        if self._counts.get(key) is not count:
            return
        if left_ms == -2:
            del self._counts[key]
            return
        count.total = total
        if left_ms > 0:
            count.ends = min(count.ends, sent_at + left_ms / 1000)

    def can_hold(self, keys: list[str]) -> bool:
        """Whether this process holds, or has room for, all the windows `keys`."""
        with self._started():
            missing = sum(key not in self._counts for key in keys)
            if missing and len(self._counts) + missing > MAX_WINDOWS:
                now = time.time()
                self._counts = {key: count for key, count in self._counts.items() if count.ends > now}
            return len(self._counts) + missing <= MAX_WINDOWS

    def sync(self) -> None:
        """Send what was counted since the last sync; take back those windows' totals. Takes
        the lock only: the sync thread must not start another as it is being stopped."""
        with self._lock:
            now = time.time()
            self._counts = {key: count for key, count in self._counts.items() if count.ends > now}
            sent = [(key, count, count.unsent) for key, count in self._counts.items() if count.unsent]
            for _, count, _ in sent:
                count.unsent = 0
        for start in range(0, len(sent), SYNC_CHUNK):
            if not self._send(sent[start : start + SYNC_CHUNK]):
                return

    def _send(self, sent: list[tuple[str, _Count, int]]) -> bool:
        """Send one chunk; False if it failed."""
        sent_at = time.time()
        try:
            totals = self._script(
                keys=[key for key, _, _ in sent],
                args=[unsent for _, _, unsent in sent] + [count.expiry for _, count, _ in sent],
            )
        except Exception as error:
            with self._lock:
                self._counts.clear()
            self._on_failure(error)
            return False
        with self._lock:
            for (key, count, _), (total, left_ms) in zip(sent, totals, strict=True):
                self._update(key, count, int(total), int(left_ms), sent_at)
        return True

    def stop(self) -> None:
        """Stop the sync thread (tests); the next count starts another."""
        with self._lock:
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        if thread is not None and stop is not None:
            stop.set()
            thread.join()

    def _started(self) -> threading.Lock:
        """This process's lock, with its sync thread running. The thread starts on first use,
        never at import or before a fork: gunicorn's gevent workers patch `threading` only
        after forking, and threads do not survive a fork. A thread that died is restarted."""
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._stop = threading.Event()
                    self._thread = threading.Thread(
                        target=self._run, args=(self._stop,), name="rate-limit-sync", daemon=True
                    )
                    self._thread.start()
        return self._lock

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(SYNC_SECONDS):
            try:
                self.sync()
            except Exception:  # a sync must never end the thread: the counts would grow unsent
                logger.exception("rate-limit sync failed")
