"""Shares set aside: what of a stream entry its rollups do not hold, after adding the entry
failed for a reason of its own (not a server's condition), kept in Redis with the error until
the operator replays it (`compactor.replay_set_aside`).

The share and the fact that the rest of its entry is in the rollups are written as one: a
script that first checks that the writer still holds the shard's lock appends the share to
SET_ASIDE_KEY and records, in the shard's withheld hash, the marker of the batch it belongs
to with the ids of the rollups the share goes into. While that field is there, the compactor
takes every entry of that batch as added (it marks it and skips it), so neither the entry met
again (its marker could not be written) nor a copy of it adds the batch into those rollups
besides the share; and a rebuild leaves those rollups to the share. Replaying moves the share
back into its shard's stream and deletes the field, again in one script under the lock,
once the entry the share came from is marked. Markers alone could not do this: they are in
MongoDB, and nothing writes a MongoDB document and a Redis stream entry at once.

An entry that cannot be read is set aside whole, with no field: nothing of it was added, its
visits' rows included, which it keeps. A share of an entry that was read carries no rows, so
that a replay never folds them twice: they are folded before the rollups are added
(app/sessions/fold.py), and only an entry whose folding fails for a reason of its own loses
its visits.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import redis

from app.rollups.entries import Entry
from app.rollups.lease import Lease, LostLockError

# Stream: the shares set aside, each with its shard, its own marker (`batch`), the marker of its
# batch (`of`) and of the entry it came from (`entry`), its deltas, the rollups it goes into
# (`only`; none for an entry set aside whole), the visits' rows of an entry set aside whole
# (`visits`) and the error.
SET_ASIDE_KEY = "analytics:rollups:set-aside"
# Hash per shard: the marker of each batch with a share set aside -> the ids of its rollups.
WITHHELD_PREFIX = "analytics:rollups:withheld"
# The fields of a share that go back into its shard's stream when replayed.
REPLAYED_FIELDS = (b"batch", b"of", b"deltas", b"only", b"visits")
# Shares a replay holds in memory at once.
SHARES_PER_PAGE = 500
# KEYS: the lock, the set-aside stream, the shard's withheld hash. ARGV: the holder's token,
# the batch's marker (empty for an entry set aside whole), the rollups' ids, then the share's
# fields and values. The share's id, or nothing if the lock is not the holder's.
PUT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[3], ARGV[2], ARGV[3]) end
return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
"""
# KEYS: the lock, the set-aside stream, the shard's stream, the shard's withheld hash. ARGV:
# the holder's token, the share's id, its batch's marker (or empty), then the fields appended
# again. 1 if moved, 0 if it was gone already, nothing if the lock is not the holder's.
MOVE_BACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
if redis.call('XDEL', KEYS[2], ARGV[2]) == 0 then return 0 end
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[4], ARGV[3]) end
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
return 1
"""


def withheld_key(shard: int) -> str:
    return f"{WITHHELD_PREFIX}:{shard}"


@dataclass(frozen=True)
class Share:
    """A share as set aside: its id in SET_ASIDE_KEY and its fields."""

    id: bytes
    fields: dict[bytes, bytes]

    @property
    def shard(self) -> int:
        return int(self.fields[b"shard"])

    @property
    def batch(self) -> str | None:
        """The marker of the batch whose rollups it withholds; None for an entry set aside whole."""
        return self.fields[b"of"].decode() if b"only" in self.fields and b"of" in self.fields else None

    @property
    def came_from(self) -> str | None:
        """The marker of the entry it was set aside from, which must be marked before the
        share is replayed (shares set aside by earlier versions name their batch only)."""
        if self.batch is None:
            return None
        return self.fields[b"entry"].decode() if b"entry" in self.fields else self.batch


def put(hold: Lease, shard: int, entry: Entry, error: Exception, only: Collection[str] | None) -> None:
    """Set aside the share of `entry` that goes into the rollups `only` (all of it if None,
    for an entry that cannot be read), if `hold` still holds the lock (else LostLockError)."""
    fields: dict[str, str | bytes] = {
        "shard": str(shard),
        "batch": f"{entry.of}/{entry.stream_id}",
        "of": entry.of,
        "entry": entry.batch_id,
        "deltas": entry.raw,
        "error": f"{error!r}"[:1000],
    }
    withholding = ["", ""]
    if only is None and entry.visit_rows:
        fields["visits"] = entry.visit_rows  # nothing of it was folded either
    if only is not None:
        rollups = json.dumps(sorted(only))
        fields["only"] = rollups
        withholding = [entry.of, rollups]
    script = hold.client.register_script(PUT)
    keys = [hold.key, SET_ASIDE_KEY, withheld_key(shard)]
    if script(keys=keys, args=[hold.token, *withholding, *_flat(fields.items())]) is None:
        raise LostLockError(f"lost {hold.key} before setting aside entry {entry.stream_id}")


def count(client: redis.Redis) -> int:
    """Shares set aside, waiting for a replay."""
    return cast(int, client.xlen(SET_ASIDE_KEY))


def pages(client: redis.Redis) -> Iterator[list[Share]]:
    """The shares set aside when called, SHARES_PER_PAGE at a time, oldest first (one set
    aside meanwhile, by a replayed share failing again, waits for the next replay)."""
    newest = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrevrange(SET_ASIDE_KEY, count=1))
    if not newest:
        return
    after = "-"
    while True:
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            client.xrange(SET_ASIDE_KEY, min=after, max=newest[0][0], count=SHARES_PER_PAGE),
        )
        if not rows:
            return
        yield [Share(share_id, fields) for share_id, fields in rows]
        after = f"({rows[-1][0].decode()}"


def move_back(hold: Lease, stream: str, shares: Iterable[Share]) -> None:
    """Append the shares to `stream`, their shard's, again, each in one step with taking it
    out of SET_ASIDE_KEY and its rollups out of the withheld hash, if `hold` still holds the
    lock (else LostLockError)."""
    script = hold.client.register_script(MOVE_BACK)
    for share in shares:
        replayed = [(name, share.fields[name]) for name in REPLAYED_FIELDS if name in share.fields]
        keys = [hold.key, SET_ASIDE_KEY, stream, withheld_key(share.shard)]
        if script(keys=keys, args=[hold.token, share.id, share.batch or "", *_flat(replayed)]) is None:
            raise LostLockError(f"lost {hold.key} while replaying shares")


def withheld(client: redis.Redis, shard: int, batches: Iterable[str]) -> dict[str, set[str]]:
    """Of the batches (markers) of `shard`, those with a share set aside, each with the ids
    of the rollups its share goes into."""
    wanted = list(dict.fromkeys(batches))
    if not wanted:
        return {}
    found = cast(list[bytes | None], client.hmget(withheld_key(shard), wanted))
    return {
        batch: set(json.loads(only)) for batch, only in zip(wanted, found, strict=True) if only is not None
    }


def _flat(pairs: Iterable[tuple[str | bytes, str | bytes]]) -> list[str | bytes]:
    return [part for pair in pairs for part in pair]
