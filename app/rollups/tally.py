"""Pre-aggregated counts of events: what a rollup holds and how rollups combine.

A `Tally` counts events per event type: how many, which distinct users, how many per path,
and how many per value of each dimension (source, browser, country, each prop: see
`app/rollups/dimensions.py`).
Users are kept as the set itself, not a count, so the tallies of any hours and days can be
combined into an exact number of distinct users. Rollups are tallies of one site over one UTC
quarter hour, hour, day or week (`app/rollups/buckets.py`); the worker turns each batch into
per-quarter deltas and the compactor (`app/rollups/compactor.py`) adds them into quarter, hour,
day and week rollups.

Users are small integer ids (see `app/rollups/user_ids.py`) in Roaring bitmaps (pyroaring):
a month of days is a union of compressed bitmaps in C, not a merge of strings.

A rollup document stores its tally as one binary value (`pack`) that the database never
looks into: zlib-compressed BSON holding the paths' names once, as JSON, and per event type
the event count, the users' bitmap serialised and the views of each path (and likewise
each dimension's values' names once, and their views per type). This shape is
FerretDB's: its time to read a document follows its size, and one binary value reads faster
than the same bytes as sub-documents (see docs/rollups.md). Reporting adds the stored
tallies up directly (`add_packed`).

A rollup keeps a bounded number of paths, event types and dimension values
(`app/rollups/caps.py`); what lies beyond is counted apart: a type's views of paths not kept
in `other_paths`, of a dimension's values not kept in `other_dims`, the events of types not
kept in `other_types`, never under a name a real path or type could have.
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
from app.rollups.dimensions import OTHER_PROPS, PROP_PREFIX, event_values
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
    # Views per value of each dimension, and per dimension the views of values its rollup
    # did not keep (under OTHER_PROPS: of the prop keys it did not keep).
    dims: dict[str, Counter[str]] = field(default_factory=dict)
    other_dims: Counter[str] = field(default_factory=Counter)

    def add(self, other: TypeTally) -> None:
        self.events += other.events
        self.users |= other.users
        self.paths.update(other.paths)
        self.other_paths += other.other_paths
        for dimension, values in other.dims.items():
            self.dims.setdefault(dimension, Counter()).update(values)
        self.other_dims.update(other.other_dims)

    def pack(self, names: Mapping[str, int], dim_names: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
        """The stored form; `names` numbers the paths of the whole tally, `dim_names` the
        values of each of its dimensions."""
        packed = {
            "events": self.events,
            "users": self.users.serialize(),
            "views": orjson.dumps(_dense(self.paths, names)),
        }
        if self.other_paths:
            packed["other_paths"] = self.other_paths
        if self.dims:
            dims = {
                dimension: _dense(values, dim_names[dimension]) for dimension, values in self.dims.items()
            }
            packed["dims"] = orjson.dumps(dims)
        if self.other_dims:
            packed["other_dims"] = orjson.dumps(self.other_dims)
        return packed

    @classmethod
    def unpack(
        cls, row: Mapping[str, Any], names: list[str], dim_names: Mapping[str, list[str]]
    ) -> TypeTally:
        if "views" in row:
            paths = _sparse(names, orjson.loads(row["views"]))
        else:  # stored before the caps, with its paths' names in each type
            paths = Counter(orjson.loads(row["paths"]))
        dims = {
            dimension: _sparse(dim_names[dimension], views)
            for dimension, views in orjson.loads(row.get("dims", b"{}")).items()
        }
        other_dims = Counter(orjson.loads(row.get("other_dims", b"{}")))
        return cls(
            row["events"],
            BitMap.deserialize(row["users"]),
            paths,
            row.get("other_paths", 0),
            dims,
            other_dims,
        )

    def dimension(self, dimension: str) -> Counter[str]:
        return self.dims.get(dimension, Counter())

    def other_of(self, dimension: str) -> int:
        """Views of the dimension's values not kept (and for a prop, of prop keys not kept)."""
        beyond = self.other_dims[OTHER_PROPS] if dimension.startswith(PROP_PREFIX) else 0
        return self.other_dims[dimension] + beyond


def _dense(counts: Mapping[str, int], names: Mapping[str, int]) -> list[int]:
    """The counts in the order `names` numbers them, zero for those it lacks."""
    views = [0] * len(names)
    for name, count in counts.items():
        views[names[name]] = count
    return views


def _sparse(names: list[str], views: list[int]) -> Counter[str]:
    return Counter({name: n for name, n in zip(names, views, strict=True) if n})


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

    def dimension(self, dimension: str) -> Counter[str]:
        """Views per value of a dimension (`app/rollups/dimensions.py`), of the values kept."""
        total: Counter[str] = Counter()
        for tally in self.all_types():
            total.update(tally.dimension(dimension))
        return total

    def other_of(self, dimension: str) -> int:
        """Views of a dimension's values not kept, by the rollups' caps (for a prop, and of
        the prop keys not kept)."""
        return sum(tally.other_of(dimension) for tally in self.all_types())

    def dimension_names(self) -> dict[str, list[str]]:
        """Each dimension's values, over every type, in name order."""
        names: dict[str, set[str]] = {}
        for tally in self.all_types():
            for dimension, values in tally.dims.items():
                names.setdefault(dimension, set()).update(values)
        return {dimension: sorted(values) for dimension, values in sorted(names.items())}

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
            | _dims_document(tally.dims)
            for event_type, tally in sorted(self.types.items())
        ]

    @classmethod
    def from_document(cls, types: Iterable[Mapping[str, Any]], ids: Mapping[str, int] | None = None) -> Tally:
        """The tally of a document whose users are ids, or names that `ids` numbers."""
        ids = ids or {}
        tally = cls()
        for row in types:
            users = BitMap(ids[user] if isinstance(user, str) else user for user in row["users"])
            dims: dict[str, Counter[str]] = {}
            for dimension, value, views in row.get("dims", ()):
                dims.setdefault(dimension, Counter())[value] = views
            tally.types[row["event_type"]] = TypeTally(
                row["events"], users, Counter(dict(row["paths"])), dims=dims
            )
        return tally

    def pack(self) -> Binary:
        """The stored form: compressed BSON of the paths' names (JSON: a path may hold any
        character, so it is never a key), and per event type the event count, the users'
        bitmap serialised and the views of each path in the names' order, so that a path
        counted under several types is stored once."""
        paths = sorted({path for tally in self.all_types() for path in tally.paths})
        names = {path: number for number, path in enumerate(paths)}
        dim_values = self.dimension_names()
        dim_names = {
            dimension: {value: number for number, value in enumerate(values)}
            for dimension, values in dim_values.items()
        }
        types = [
            {"event_type": event_type, **tally.pack(names, dim_names)}
            for event_type, tally in sorted(self.types.items())
        ]
        document: dict[str, Any] = {"paths": orjson.dumps(paths), "types": types}
        if dim_values:
            document["dims"] = orjson.dumps(dim_values)
        if self.other_types != TypeTally():
            document["other_types"] = self.other_types.pack(names, dim_names)
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
        dim_names = orjson.loads(document["dims"]) if "dims" in document else {}
        for row in document["types"]:
            self.types.setdefault(row["event_type"], TypeTally()).add(TypeTally.unpack(row, names, dim_names))
        if "other_types" in document:
            self.other_types.add(TypeTally.unpack(document["other_types"], names, dim_names))

    @classmethod
    def of(cls, events: Iterable[Mapping[str, Any]]) -> Tally:
        """Count events whose `user_id`, if any, is the user's integer id (at least 1)."""
        counts: dict[str, TypeTally] = {}
        for event in events:
            tally = counts.setdefault(event["event_type"], TypeTally())
            tally.events += 1
            if event.get("user_id"):
                tally.users.add(event["user_id"])
            if event.get("path"):
                tally.paths[event["path"]] += 1
            _count_values(tally.dims, event)
        return cls(counts)


def _count_values(dims: dict[str, Counter[str]], event: Mapping[str, Any]) -> None:
    for dimension, value in event_values(event):
        dims.setdefault(dimension, Counter())[value] += 1


def _dims_document(dims: Mapping[str, Counter[str]]) -> dict[str, Any]:
    """A type's dimensions as a document holds them: [dimension, value, views] triples, in
    name order (a value may hold any character, so it is never a key); none when empty."""
    rows = sorted(
        [dimension, value, views] for dimension, values in dims.items() for value, views in values.items()
    )
    return {"dims": rows} if rows else {}


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
    groups: dict[
        tuple[str, datetime], dict[str, tuple[list[int], set[str], Counter[str], dict[str, Counter[str]]]]
    ] = {}
    for event in events:
        types = groups.setdefault((event["site_id"], floor_to(event["timestamp"], "quarter")), {})
        number, users, paths, dims = types.setdefault(event["event_type"], ([0], set(), Counter(), {}))
        number[0] += 1
        user = identity(event)
        if user:
            users.add(user)
        if event.get("path"):
            paths[event["path"]] += 1
        _count_values(dims, event)
    return {
        key: [
            {
                "event_type": event_type,
                "events": number[0],
                "users": sorted(users),
                "paths": sorted([path, views] for path, views in paths.items()),
            }
            | _dims_document(dims)
            for event_type, (number, users, paths, dims) in sorted(types.items())
        ]
        for key, types in groups.items()
    }
