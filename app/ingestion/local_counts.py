"""Rate-limit windows counted in each process, reconciled with Redis in the background, as
Kong's rate-limiting plugin does with `sync_rate`.

A request is counted in memory, with no Redis call: over when the window's total as Redis
last told it, plus what this process counted since, passes the limit. A thread a process
sends what it counted every SYNC_SECONDS, every window in one script call, and takes back
the totals, the other processes' counts included, and when each window ends. The same keys
and fixed windows as the counts made in Redis (`limits`' own), so both kinds agree.

A window can so pass its limit by what the other processes admit before they hear of each
other: at most processes x SYNC_SECONDS x the rate the window is offered. That bound is
small against a limit only when the limit brings at least a request per interval; smaller
limits are counted in Redis on every request (app/ingestion/rate_limits.py).

A failed sync pauses the limits (the caller's `on_failure`): failing open, as the counts
made in Redis do.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.commands.core import Script

SYNC_SECONDS = 0.1
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
        self._lock: threading.Lock | None = None
        self._pid = 0

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

    def sync(self) -> None:
        """Send what was counted since the last sync; take back each window's total."""
        with self._started():
            now = time.time()
            self._counts = {key: count for key, count in self._counts.items() if count.ends > now}
            sent = {key: count.unsent for key, count in self._counts.items()}
            expiries = [count.expiry for count in self._counts.values()]
            for count in self._counts.values():
                count.unsent = 0
        if not sent:
            return
        try:
            totals = self._script(keys=list(sent), args=[*sent.values(), *expiries])
        except Exception as error:
            with self._started():
                self._counts.clear()
            self._on_failure(error)
            return
        now = time.time()
        with self._started():
            for key, (total, left_ms) in zip(sent, totals, strict=True):
                synced = self._counts.get(key)
                if synced is not None:
                    synced.total = int(total)
                    if int(left_ms) > 0:
                        synced.ends = now + int(left_ms) / 1000

    def _started(self) -> threading.Lock:
        """This process's lock, and its sync thread started. Made on first use in each process,
        never at import or before a fork: gunicorn's gevent workers patch `threading` only
        after forking, and threads do not survive a fork."""
        if self._lock is None or self._pid != os.getpid():
            self._pid, self._lock, self._counts = os.getpid(), threading.Lock(), {}
            threading.Thread(target=self._run, name="rate-limit-sync", daemon=True).start()
        return self._lock

    def _run(self) -> None:
        while True:
            time.sleep(SYNC_SECONDS)
            self.sync()
