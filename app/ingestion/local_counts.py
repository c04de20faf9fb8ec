"""Rate-limit windows counted in each process, reconciled with Redis in the background, as
Kong's rate-limiting plugin does with `sync_rate`.

A request is counted in memory, with no Redis call: over when the window's total as Redis
last told it, plus what this process counted since, passes the limit. A thread a process
sends what it counted every SYNC_SECONDS, the windows with new hits only, a chunk of them a
script call, and takes back their totals, the other processes' counts included, and when
each window ends. The same keys and fixed windows as the counts made in Redis (`limits`'
own), so both kinds agree.

A window can so pass its limit by what the other processes admit before they hear of each
other: at most processes x SYNC_SECONDS x the rate the window is offered. That bound is
small against a limit only when the limit brings at least a request per IN_PROCESS_SECONDS;
smaller limits are counted in Redis on every request (app/ingestion/rate_limits.py), and so
are the windows a process cannot hold once it holds MAX_WINDOWS: a forger's many addresses
must not make a sync, and so the interval the bound depends on, grow without end.

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


@dataclass
class _Count:
    total: int  # the window's count as Redis last told it
    unsent: int  # counted here since the last sync
    ends: float  # time.time() when the window ends
    expiry: int  # the window's length, seconds


class LocalCounts:
    """The windows of one process. `on_failure` is called with the error of a failed sync."""

    def __init__(self, script: Script, on_failure: Callable[[Exception], None]) -> None:
        self._script = script
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
            count.unsent += cost
            return count.ends if count.total + count.unsent > limit else None

    def can_hold(self, keys: list[str]) -> bool:
        """Whether this process holds, or has room for, all the windows `keys`."""
        with self._started():
            missing = sum(key not in self._counts for key in keys)
            if missing and len(self._counts) + missing > MAX_WINDOWS:
                now = time.time()
                self._counts = {key: count for key, count in self._counts.items() if count.ends > now}
            return len(self._counts) + missing <= MAX_WINDOWS

    def sync(self) -> None:
        """Send what was counted since the last sync; take back those windows' totals."""
        with self._started():
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
            with self._started():
                self._counts.clear()
            self._on_failure(error)
            return False
        with self._started():
            for (key, count, _), (total, left_ms) in zip(sent, totals, strict=True):
                # A window that ended while the reply was on its way was replaced by another.
                if self._counts.get(key) is not count:
                    continue
                if int(left_ms) == -2:
                    del self._counts[key]
                    continue
                count.total = int(total)
                if int(left_ms) > 0:
                    count.ends = min(count.ends, sent_at + int(left_ms) / 1000)
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
