"""A compactor's hold on a shard: one holder at a time, kept alive while it works, and a
fencing token with each hold, larger than every earlier holder's.

A lock with an expiry cannot by itself stop a holder that stalled past the expiry (a pause,
a swap storm, a slow network) from writing after another took over: it checked, stalled,
then wrote. So taking the lock also takes the next number of the shard's fence counter, in
the same script, and every rollup carries the number of the hold that wrote it: the store
refuses to replace a rollup with one of an older hold, or of another hold with the same number
(`app/store/rollups.py` says what each server guarantees). A counter that went back (Redis
restored from an older snapshot, or failed over to a replica that missed increments) would
have every write of later holds refused: a holder whose write was refused while it still holds
the lock raises the counter above the fence it was refused for and takes a number from there
(`raise_fence_above`). And a thread extends the lock while its holder works, so work that takes
longer than the expiry (a rebuild's raw read, a wide round) keeps its shard; a holder stalled
as a whole stalls its thread too, and loses the lock as it should. (Every call the holder
makes to the servers is bounded by its client's timeouts, so the thread keeps no lock for a
holder stuck waiting.)
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

import redis
from redis.exceptions import LockNotOwnedError, RedisError

from app.store.fenced import StaleWriteError

logger = logging.getLogger(__name__)

# KEYS[1]: the lock, KEYS[2]: its fence counter; ARGV[1]: the holder's token, ARGV[2]: the
# expiry in milliseconds. The fence number of the new hold, or nothing if the lock is taken.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
"""
# KEYS[1]: the lock; ARGV[1]: the holder's token, ARGV[2]: the new expiry in milliseconds.
EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1]: the lock, KEYS[2]: its fence counter; ARGV[1]: the holder's token, ARGV[2]: a fence
# found on a stored rollup. The counter raised to that fence if below it, then the hold's new
# number; nothing if the lock is not the holder's.
RAISE_FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
if (tonumber(redis.call('GET', KEYS[2])) or 0) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
return redis.call('INCR', KEYS[2])
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# How often, within one expiry, the keeping thread extends the lock.
EXTENSIONS_PER_EXPIRY = 3
# Between two tries to take a lock held by another.
WAIT_STEP_SECONDS = 0.1


class LostLockError(LockNotOwnedError):
    """The lock expired, or is another holder's now: this holder must not write again."""


@dataclass
class Lease:
    """A held lock: `token` is the holder's own, `fence` the hold's number, `check` confirms the
    hold (extending it)."""

    client: redis.Redis
    key: str
    seconds: float
    token: str
    fence: int
    stopped: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Extend the lock, or raise LostLockError if it is no longer this holder's. Called
        before every write, so a holder that lost its lock stops writing."""
        if not self._extend():
            raise LostLockError(f"lost {self.key}: another compactor may hold it")

    def raise_fence_above(self, stored: int) -> None:
        """Take a fence larger than `stored`, the fence of a rollup this hold's write was refused
        for, if the lock is still this holder's (else LostLockError): then no newer holder wrote
        it, the counter went back."""
        script = self.client.register_script(RAISE_FENCE)
        fence = script(keys=[self.key, fence_key(self.key)], args=[self.token, stored])
        if fence is None:
            raise LostLockError(f"lost {self.key}: another compactor may hold it")
        logger.warning(
            "%s's fence counter was behind a stored rollup's fence %d (Redis lost data or failed over): "
            "raised it, this hold's fence is now %d",
            self.key,
            stored,
            fence,
        )
        self.fence = int(cast(int, fence))

    def write_fenced(self, write: Callable[[], None]) -> None:
        """Run `write`, which writes documents with this hold's fence. A write refused for a
        stored fence while the lock is still this holder's means the fence counter went back
        (Redis lost its data, or failed over): the hold takes a fence above the one refused,
        and `write` runs again. Each time the hold's fence passes a stored one, so it ends."""
        while True:
            try:
                write()
                return
            except StaleWriteError as error:
                if error.fence < self.fence:
                    raise  # not refused for a fence
                self.raise_fence_above(error.fence)  # LostLockError if a newer holder wrote them

    def _extend(self) -> bool:
        milliseconds = int(self.seconds * 1000)
        return bool(self.client.register_script(EXTEND)(keys=[self.key], args=[self.token, milliseconds]))

    def keep(self) -> None:
        """Extend the lock every so often until `stopped` is set or the lock is lost."""
        while not self.stopped.wait(self.seconds / EXTENSIONS_PER_EXPIRY):
            try:
                if not self._extend():
                    return
            except RedisError as error:  # the next try may reach Redis; until then the expiry runs
                logger.warning("could not extend %s: %s", self.key, error)

    def release(self) -> None:
        """Stop keeping the lock and let it go, if it is still this holder's (if Redis cannot
        be told, the lock expires by itself)."""
        self.stopped.set()
        try:
            self.client.register_script(RELEASE)(keys=[self.key], args=[self.token])
        except RedisError as error:
            logger.warning("could not release %s: %s", self.key, error)


def fence_key(lock_key: str) -> str:
    return f"{lock_key}:fence"


def acquire(client: redis.Redis, key: str, seconds: float, wait: float = 0.0) -> Lease | None:
    """Take the lock at `key` for `seconds`, waiting up to `wait` seconds for its holder to
    let go; None if it stayed taken."""
    token = uuid.uuid4().hex
    script = client.register_script(ACQUIRE)
    give_up = time.monotonic() + wait
    while (fence := script(keys=[key, fence_key(key)], args=[token, int(seconds * 1000)])) is None:
        if time.monotonic() >= give_up:
            return None
        time.sleep(WAIT_STEP_SECONDS)
    return Lease(client, key, seconds, token, int(cast(int, fence)))


@contextmanager
def held(client: redis.Redis, key: str, seconds: float, wait: float = 0.0) -> Iterator[Lease | None]:
    """The lock at `key`, kept alive by a thread while the block runs, released after it;
    None if it stayed taken for `wait` seconds."""
    lease = acquire(client, key, seconds, wait)
    if lease is None:
        yield None
        return
    keeper = threading.Thread(target=lease.keep, name=f"keep {key}", daemon=True)
    keeper.start()
    try:
        yield lease
    finally:
        lease.release()
        keeper.join()
