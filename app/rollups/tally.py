"""Pre-aggregated counts of events: what a rollup holds and how rollups combine.

A `Tally` counts events per event type: how many, which distinct users, how many per path.
Users are kept as the set itself, not a count, so the tallies of any hours and days can be
combined into an exact number of distinct users. Rollups are tallies of one site over one UTC
hour, day or week (`app/rollups/buckets.py`); the worker turns each batch into per-hour
deltas and the compactor (`app/rollups/compactor.py`) adds them into hour, day and week rollups.

Users are small integer ids (see `app/rollups/user_ids.py`) in Roaring bitmaps (pyroaring):
a month of days is a union of compressed bitmaps in C, not a merge of strings.

A rollup document stores its tally as one binary value (`pack`) that the database never
looks into: zlib-compressed BSON holding, per event type, the event count, the users'
bitmap serialised and the paths as JSON. This shape is FerretDB's: its time to read a
document follows its size, and one binary value reads faster than the same bytes as
sub-documents (see docs/rollups.md). Reporting adds the stored tallies up directly
(`add_packed`).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import bson
import orjson
from bson import Binary
from pyroaring import BitMap

from app.rollups.buckets import Bucket, containing_buckets, floor_to

# zlib's fastest level: the higher ones take several times as long and save little on bitmaps.
COMPRESSION_LEVEL = 1


@dataclass
class TypeTally:
    """One event type's counts."""

    events: int = 0
    users: BitMap = field(default_factory=BitMap)
    paths: Counter[str] = field(default_factory=Counter)

    def add(self, other: TypeTally) -> None:
        self.events += other.events
        self.users |= other.users
        self.paths.update(other.paths)


@dataclass
class Tally:
    """Event counts by event type, addable and exact."""

    types: dict[str, TypeTally] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        for event_type, tally in other.types.items():
            self.types.setdefault(event_type, TypeTally()).add(tally)

    def selected(self, event_type: str | None) -> Tally:
        """This tally, or only its `event_type` part."""
        if event_type is None:
            return self
        return Tally({event_type: self.types[event_type]} if event_type in self.types else {})

    @property
    def events(self) -> int:
        return sum(tally.events for tally in self.types.values())

    @property
    def unique_users(self) -> int:
        return len(BitMap.union(BitMap(), *(tally.users for tally in self.types.values())))

    @property
    def paths(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for tally in self.types.values():
            total.update(tally.paths)
        return total

    def to_document(self) -> list[dict[str, Any]]:
        """As plain JSON values, users as a list of ids; sorted, so equal tallies give equal
        documents. Paths are [path, views] pairs, never keys: a path may hold `.` or start with `$`."""
        return [
            {
                "event_type": event_type,
                "events": tally.events,
                "users": list(tally.users),
                "paths": sorted([path, views] for path, views in tally.paths.items()),
            }
            for event_type, tally in sorted(self.types.items())
        ]

    @classmethod
    def from_document(cls, types: Iterable[Mapping[str, Any]]) -> Tally:
        tally = cls()
        for row in types:
            tally.types[row["event_type"]] = TypeTally(
                row["events"], BitMap(row["users"]), Counter(dict(row["paths"]))
            )
        return tally

    def pack(self) -> Binary:
        """The stored form: compressed BSON of, per event type, the event count, the users'
        bitmap serialised and the paths as a JSON object of views by path (a path may hold
        any character, so it is never a key)."""
        types = [
            {
                "event_type": event_type,
                "events": tally.events,
                "users": tally.users.serialize(),
                "paths": orjson.dumps(tally.paths),
            }
            for event_type, tally in sorted(self.types.items())
        ]
        return Binary(zlib.compress(bson.encode({"types": types}), COMPRESSION_LEVEL))

    @classmethod
    def unpack(cls, packed: bytes) -> Tally:
        tally = cls()
        tally.add_packed(packed)
        return tally

    def add_packed(self, packed: bytes) -> None:
        """Add a stored tally without building it first: reporting adds up dozens."""
        for row in bson.decode(zlib.decompress(packed))["types"]:
            tally = self.types.setdefault(row["event_type"], TypeTally())
            tally.events += row["events"]
            tally.users |= BitMap.deserialize(row["users"])
            tally.paths.update(orjson.loads(row["paths"]))

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]]) -> Tally:
        """Count events whose `user_id`, if any, is the user's integer id (at least 1)."""
        counts: dict[str, tuple[list[int], BitMap, Counter[str]]] = {}
        for event in events:
            number, users, paths = counts.setdefault(event["event_type"], ([0], BitMap(), Counter()))
            number[0] += 1
            if event.get("user_id"):
                users.add(event["user_id"])
            if event.get("path"):
                paths[event["path"]] += 1
        return cls(
            {kind: TypeTally(number[0], users, paths) for kind, (number, users, paths) in counts.items()}
        )


def hourly_tallies(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, datetime], Tally]:
    """Tallies of stored event documents, users as integer ids, by site and UTC hour."""
    groups: dict[tuple[str, datetime], list[Mapping[str, Any]]] = {}
    for event in events:
        groups.setdefault((event["site_id"], floor_to(event["timestamp"], "hour")), []).append(event)
    return {key: Tally.of(group) for key, group in groups.items()}


def bucket_tallies(events: Iterable[Mapping[str, Any]]) -> dict[Bucket, Tally]:
    """Tallies of stored event documents, users as integer ids, by the rollups they add into."""
    tallies: dict[Bucket, Tally] = {}
    for (site_id, hour), tally in hourly_tallies(events).items():
        for bucket in containing_buckets(site_id, hour):
            tallies.setdefault(bucket, Tally()).add(tally)
    return tallies
