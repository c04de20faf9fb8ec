"""Each site's rollup generation: a number that moves whenever its rollups may have changed,
part of the key of every cached answer about the site (`reporting/cache.py`).

A writer of rollups moves the generations of a slice's sites before it writes the slice (no
answer cached earlier outlives the write) and after it (nor one a reader computed meanwhile,
from the rollups before the write). A writer killed between the two never makes the second
move, so the first also adds the sites to its shard's set of sites being written, and the
second takes them out: whoever takes the shard's lock next moves the generations of the sites
it finds there (`move_unfinished`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import cast

import redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# Hash: site id -> how many times its rollups changed.
GENERATIONS_KEY = "analytics:rollups:generations"
# Set per shard: the sites whose rollups a holder of the shard's lock is writing.
WRITING_PREFIX = "analytics:rollups:generations:writing"
# KEYS[1]: the generations, KEYS[2]: a shard's sites being written. Moves their generations
# and forgets them; returns how many there were.
MOVE_UNFINISHED = """
local sites = redis.call('SMEMBERS', KEYS[2])
for _, site in ipairs(sites) do
  redis.call('HINCRBY', KEYS[1], site, 1)
end
redis.call('DEL', KEYS[2])
return #sites
"""


def writing_key(shard: int) -> str:
    return f"{WRITING_PREFIX}:{shard}"


def generation(client: redis.Redis, site_id: str) -> int:
    """A number that changes whenever the site's rollups do."""
    return int(cast(bytes | None, client.hget(GENERATIONS_KEY, site_id)) or 0)


@contextmanager
def writing(client: redis.Redis, shard: int, sites: Collection[str]) -> Iterator[None]:
    """Move the sites' generations around the block that writes their rollups. If the block
    fails, a failure of the second move is only logged, so that it does not hide the block's
    own error: the sites stay in the shard's set, for its next holder to move."""
    _move(client, shard, sites, done=False)
    try:
        yield
    except BaseException:
        try:
            _move(client, shard, sites, done=True)
        except RedisError as error:
            logger.warning(
                "left the cache generations of %d sites to the shard's next holder: %s", len(sites), error
            )
        raise
    _move(client, shard, sites, done=True)


def _move(client: redis.Redis, shard: int, sites: Collection[str], done: bool) -> None:
    pipe = client.pipeline(transaction=True)
    for site_id in sites:
        pipe.hincrby(GENERATIONS_KEY, site_id, 1)
    if sites:
        (pipe.srem if done else pipe.sadd)(writing_key(shard), *sites)
    pipe.execute()


def move_unfinished(client: redis.Redis, shard: int) -> int:
    """Move the generations of the sites an earlier holder of the shard's lock was writing when
    it stopped (killed, or Redis unreachable for its second move); return how many."""
    script = client.register_script(MOVE_UNFINISHED)
    return int(cast(int, script(keys=[GENERATIONS_KEY, writing_key(shard)])))
