"""Pre-aggregated counts of events: what a rollup holds and how rollups combine.

A `Tally` counts events per event type: how many, which distinct users, how many per path.
Users are kept as the set itself, not a count, so the tallies of any hours and days can be
combined into an exact number of distinct users. Rollups are tallies of one site over one UTC
quarter hour, hour, day or week (`app/rollups/buckets.py`); the worker turns each batch into
per-quarter deltas and the compactor (`app/rollups/compactor.py`) adds them into quarter, hour,
day and week rollups.

Users are small integer ids (see `app/rollups/user_ids.py`) in Roaring bitmaps (pyroaring):
a month of days is a union of compressed bitmaps in C, not a merge of strings.

A rollup document stores its tally as one binary value (`pack`) that the database never
looks into: zlib-compressed BSON holding the paths' names once, as JSON, and per event type
the event count, the users' bitmap serialised and the views of each path. This shape is
FerretDB's: its time to read a document follows its size, and one binary value reads faster
than the same bytes as sub-documents (see docs/rollups.md). Reporting adds the stored
tallies up directly (`add_packed`).

A rollup keeps a bounded number of paths and event types (`app/rollups/caps.py`); what
lies beyond is counted apart: a type's views of paths not kept in `other_paths`, the events
of types not kept in `other_types`, never under a name a real path or type could have.
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

from app.rollups.buckets import floor_to
from app.visitors import identity

# zlib's fastest level: the higher ones take several times as long and save little on bitmaps.
COMPRESSION_LEVEL = 1


@dataclass
class TypeTally:
    """One event type's counts."""

    events: int = 0
    users: BitMap = field(default_factory=BitMap)
    paths: Counter[str] = field(default_factory=Counter)
    # Views of paths its rollup did not keep, beyond the rollup's cap.
    other_paths: int = 0

    def add(self, other: TypeTally) -> None:
        self.events += other.events
        self.users |= other.users
        self.paths.update(other.paths)
        self.other_paths += other.other_paths

    def pack(self, names: Mapping[str, int]) -> dict[str, Any]:
        """The stored form; `names` numbers the paths of the whole tally."""
        views = [0] * len(names)
        for path, count in self.paths.items():
            views[names[path]] = count
        packed = {"events": self.events, "users": self.users.serialize(), "views": orjson.dumps(views)}
        return packed | ({"other_paths": self.other_paths} if self.other_paths else {})

    @classmethod
    def unpack(cls, row: Mapping[str, Any], names: list[str]) -> TypeTally:
        if "views" in row:
            paths = Counter({path: n for path, n in zip(names, orjson.loads(row["views"]), strict=True) if n})
        else:  # stored before the caps, with its paths' names in each type
            paths = Counter(orjson.loads(row["paths"]))
        return cls(row["events"], BitMap.deserialize(row["users"]), paths, row.get("other_paths", 0))


@dataclass
class Tally:
    """Event counts by event type, addable and exact."""

    types: dict[str, TypeTally] = field(default_factory=dict)
    # The event types its rollup did not keep, beyond the rollup's cap, counted together.
    other_types: TypeTally = field(default_factory=TypeTally)

    def add(self, other: Tally) -> None:
        for event_type, tally in other.types.items():
            self.types.setdefault(event_type, TypeTally()).add(tally)
        self.other_types.add(other.other_types)

    def selected(self, event_type: str | None) -> Tally:
        """This tally, or only its `event_type` part (nothing of a type its rollups did not
        keep: `other_types` says how many events that may leave out)."""
        if event_type is None:
            return self
        return Tally({event_type: self.types[event_type]} if event_type in self.types else {})

    def all_types(self) -> list[TypeTally]:
        """The kept types' tallies and that of the others."""
        return [*self.types.values(), self.other_types]

    @property
    def events(self) -> int:
        return sum(tally.events for tally in self.all_types())

    @property
    def unique_users(self) -> int:
        return len(BitMap.union(BitMap(), *(tally.users for tally in self.all_types())))

    @property
    def paths(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for tally in self.all_types():
            total.update(tally.paths)
        return total

    @property
    def other_paths(self) -> int:
        """Views of paths not kept, by the rollups' caps."""
        return sum(tally.other_paths for tally in self.all_types())

    def to_document(self, names: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
        """As plain JSON values, users as a list of ids (or of their `names`); sorted, so equal
        tallies give equal documents. Paths are [path, views] pairs, never keys: a path may
        hold `.` or start with `$`."""
        return [
            {
                "event_type": event_type,
                "events": tally.events,
                "users": sorted(names[user] for user in tally.users) if names else list(tally.users),
                "paths": sorted([path, views] for path, views in tally.paths.items()),
            }
            for event_type, tally in sorted(self.types.items())
        ]

    @classmethod
    def from_document(cls, types: Iterable[Mapping[str, Any]], ids: Mapping[str, int] | None = None) -> Tally:
        """The tally of a document whose users are ids, or names that `ids` numbers."""
        ids = ids or {}
        tally = cls()
        for row in types:
            users = BitMap(ids[user] if isinstance(user, str) else user for user in row["users"])
            tally.types[row["event_type"]] = TypeTally(row["events"], users, Counter(dict(row["paths"])))
        return tally

    def pack(self) -> Binary:
        """The stored form: compressed BSON of the paths' names (JSON: a path may hold any
        character, so it is never a key), and per event type the event count, the users'
        bitmap serialised and the views of each path in the names' order, so that a path
        counted under several types is stored once."""
        paths = sorted({path for tally in self.all_types() for path in tally.paths})
        names = {path: number for number, path in enumerate(paths)}
        types = [
            {"event_type": event_type, **tally.pack(names)}
            for event_type, tally in sorted(self.types.items())
        ]
        document: dict[str, Any] = {"paths": orjson.dumps(paths), "types": types}
        if self.other_types != TypeTally():
            document["other_types"] = self.other_types.pack(names)
        return Binary(zlib.compress(bson.encode(document), COMPRESSION_LEVEL))

    @classmethod
    def unpack(cls, packed: bytes) -> Tally:
        tally = cls()
        tally.add_packed(packed)
        return tally

    def add_packed(self, packed: bytes) -> None:
        """Add a stored tally: reporting adds up dozens."""
        document = bson.decode(zlib.decompress(packed))
        names = orjson.loads(document["paths"]) if "paths" in document else []
        for row in document["types"]:
            self.types.setdefault(row["event_type"], TypeTally()).add(TypeTally.unpack(row, names))
        if "other_types" in document:
            self.other_types.add(TypeTally.unpack(document["other_types"], names))

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


def quarter_tallies(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, datetime], Tally]:
    """Tallies of stored event documents, users as integer ids, by site and UTC quarter hour."""
    groups: dict[tuple[str, datetime], list[Mapping[str, Any]]] = {}
    for event in events:
        groups.setdefault((event["site_id"], floor_to(event["timestamp"], "quarter")), []).append(event)
    return {key: Tally.of(group) for key, group in groups.items()}


def quarter_documents(
    events: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, datetime], list[dict[str, Any]]]:
    """The tallies of stored event documents whose users are still names, by site and UTC
    quarter hour, as documents (`Tally.to_document`) that name the users: whoever adds them up
    numbers the users. Built without bitmaps, which only the compactor needs: a worker
    stores an import's batch as hundreds of site-quarters."""
    groups: dict[tuple[str, datetime], dict[str, tuple[list[int], set[str], Counter[str]]]] = {}
    for event in events:
        types = groups.setdefault((event["site_id"], floor_to(event["timestamp"], "quarter")), {})
        number, users, paths = types.setdefault(event["event_type"], ([0], set(), Counter()))
        number[0] += 1
        user = identity(event)
        if user:
            users.add(user)
        if event.get("path"):
            paths[event["path"]] += 1
    return {
        key: [
            {
                "event_type": event_type,
                "events": number[0],
                "users": sorted(users),
                "paths": sorted([path, views] for path, views in paths.items()),
            }
            for event_type, (number, users, paths) in sorted(types.items())
        ]
        for key, types in groups.items()
    }
