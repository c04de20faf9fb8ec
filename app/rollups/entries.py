"""An entry of a shard's stream of deltas, as the compactor reads it: a batch's tallies of the
shard's sites per quarter hour with its rows for the visits (`app/sessions/rows.py`), or a
share of one set aside and replayed (`shares`), which carries no rows.

Reading an entry never fails: one that cannot be read (not JSON, a delta without its site or
hour, a field missing) is `malformed`, and the compactor sets it aside whole, so that no entry
stops its shard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

import orjson

from app.rollups.buckets import Bucket, containing_buckets
from app.sessions.rows import VisitRow, read_rows

# The `through` of a rollup that holds no stream entry (Redis's smallest stream id).
NO_ENTRY = "0-0"
# Site-quarters whose rollups are remembered: an import's entries name the same ones again.
SITE_QUARTERS_CACHED = 65_536
# What reading a malformed entry raises.
UNREADABLE = (KeyError, ValueError, TypeError, AttributeError)


class UnreadableEntryError(ValueError):
    """An entry that cannot be read was met in a round."""


def stream_order(stream_id: str) -> tuple[int, int]:
    milliseconds, sequence = stream_id.split("-")
    return int(milliseconds), int(sequence)


@dataclass(frozen=True)
class Entry:
    """A stream entry: a batch's deltas in one shard, or a share of one set aside and replayed,
    which goes into `only` of its rollups and is marked as `batch_id`, not as its batch `of`."""

    stream_id: str
    batch_id: str  # the marker written once the entry is added
    raw: bytes  # the deltas as appended
    of: str  # the marker of the batch the entry belongs to (its own, but for a share)
    only: frozenset[str] | None = None  # the ids of the rollups a share goes into
    malformed: str | None = None  # why the entry cannot be read, if it cannot
    visit_rows: bytes = b""  # the rows for the visits as appended (none in a share)

    @cached_property
    def deltas(self) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = orjson.loads(self.raw)
        return deltas

    @cached_property
    def visits(self) -> list[VisitRow]:
        return read_rows(self.visit_rows)

    @cached_property
    def order(self) -> tuple[int, int]:
        return stream_order(self.stream_id)

    @cached_property
    def deltas_with_buckets(self) -> list[tuple[dict[str, Any], tuple[Bucket, ...]]]:
        """Each delta with the rollups it goes into: worked out once, as a round needs
        them twice and an import's entry holds hundreds."""
        pairs = [(delta, _buckets_of(delta["site_id"], *_moment(delta))) for delta in self.deltas]
        if self.only is None:
            return pairs
        only = self.only
        return [(delta, tuple(bucket for bucket in buckets if bucket.id in only)) for delta, buckets in pairs]

    @cached_property
    def buckets(self) -> set[Bucket]:
        return {bucket for _, buckets in self.deltas_with_buckets for bucket in buckets}


def read(stream_id: str, fields: Mapping[bytes, bytes]) -> Entry:
    """The entry of `fields`, as appended by `compactor.append_batch` or a replay; malformed if
    it cannot be read, its rollups worked out now so that it is found so before its round."""
    try:
        entry = _entry(stream_id, fields)
        entry.buckets  # noqa: B018 (reads every delta's site and time)
    except UNREADABLE as error:
        return _malformed(stream_id, fields, error)
    return entry


def _entry(stream_id: str, fields: Mapping[bytes, bytes]) -> Entry:
    batch = fields[b"batch"].decode()
    only = frozenset(json.loads(fields[b"only"])) if b"only" in fields else None
    of = fields[b"of"].decode() if b"of" in fields else batch
    return Entry(stream_id, batch, fields[b"deltas"], of, only, visit_rows=fields.get(b"visits", b""))


def _malformed(stream_id: str, fields: Mapping[bytes, bytes], error: Exception) -> Entry:
    """An entry that cannot be read, named as far as its fields allow."""
    named = fields.get(b"of") or fields.get(b"batch") or b"unnamed"
    batch = named.decode(errors="replace")
    deltas, rows = fields.get(b"deltas", b""), fields.get(b"visits", b"")
    return Entry(stream_id, batch, deltas, batch, None, f"{error!r}"[:200], rows)


def _moment(delta: Mapping[str, Any]) -> tuple[str, str]:
    """When a delta's events happened, and its finest rollup: a quarter hour, or the hour of
    a delta appended before quarter rollups existed (`app/migrations.py` rebuilds the
    quarters of the events it counts)."""
    return (delta["quarter"], "quarter") if "quarter" in delta else (delta["hour"], "hour")


@lru_cache(maxsize=SITE_QUARTERS_CACHED)
def _buckets_of(site_id: str, moment: str, finest: str) -> tuple[Bucket, ...]:
    """The rollups a site-quarter's (or an older site-hour's) delta goes into."""
    return tuple(containing_buckets(site_id, datetime.fromisoformat(moment), finest))
