"""How much one rollup keeps: at most so many distinct paths (and so many bytes of them), so
many event types, so many prop keys and so many values of each dimension (and bytes of
them), whatever the input, so that no rollup nears MongoDB's 16 MiB limit for a document
however many distinct paths, referrers or props a site (or a bot) sends.

First come, first kept: a path or event type is kept when its rollup meets it while under
its cap, and stays kept, counted exactly. What comes later is counted apart: the views of a
path not kept in its type's `other_paths`, of a dimension's value not kept in its type's
`other_dims` (of a prop key not kept, under OTHER_PROPS), the events of a type not kept in
the tally's `other_types` (with their users and paths, so the totals stay exact). A rollup
adds its batches in stream order, and within one batch's delta types, paths and values come
in name order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.rollups.buckets import Bucket, containing_buckets
from app.rollups.dimensions import OTHER_PROPS, PROP_PREFIX
from app.rollups.tally import Tally, TypeTally, quarter_tallies
from app.settings import Settings

# The longest path in characters the API accepts: the paths kept may take on average this
# many bytes each as stored (JSON), so paths of characters of four bytes, or of characters
# JSON escapes, make a rollup keep fewer paths, not more bytes.
PATH_BYTES = 2048
# What the values of one dimension kept may take on average each, as stored: a referrer may
# be as long as a path, most values (a browser, a country) are a few bytes.
VALUE_BYTES = 256
_DEFAULTS = Settings()


@dataclass(frozen=True)
class Caps:
    """The most paths, event types, prop keys and values of each dimension one rollup keeps."""

    paths: int
    event_types: int
    dimension_values: int = _DEFAULTS.rollup_max_dimension_values
    prop_keys: int = _DEFAULTS.rollup_max_prop_keys

    @classmethod
    def of(cls, settings: Settings) -> Caps:
        return cls(
            settings.rollup_max_paths,
            settings.rollup_max_event_types,
            settings.rollup_max_dimension_values,
            settings.rollup_max_prop_keys,
        )

    @property
    def path_bytes(self) -> int:
        return self.paths * PATH_BYTES

    @property
    def value_bytes(self) -> int:
        return self.dimension_values * VALUE_BYTES


DEFAULT_CAPS = Caps.of(Settings())


class CappedTally:
    """A rollup's tally being added to within its caps. It remembers the paths it keeps, so
    that adding a batch costs the batch's size, not the rollup's."""

    def __init__(self, tally: Tally, caps: Caps) -> None:
        self.tally = tally
        self.caps = caps
        self.kept = set(tally.paths)
        self.kept_bytes = sum(stored_size(path) for path in self.kept)
        self.kept_values = {dimension: set(values) for dimension, values in tally.dimension_names().items()}
        self.kept_value_bytes = {
            dimension: sum(stored_size(value) for value in values)
            for dimension, values in self.kept_values.items()
        }
        self.kept_props = sum(dimension.startswith(PROP_PREFIX) for dimension in self.kept_values)

    def add(self, other: Tally) -> None:
        for event_type, tally in other.types.items():
            self._add_type(self._type_tally(event_type), tally)
        self._add_type(self.tally.other_types, other.other_types)

    def _type_tally(self, event_type: str) -> TypeTally:
        types = self.tally.types
        if event_type in types:
            return types[event_type]
        if len(types) < self.caps.event_types:
            return types.setdefault(event_type, TypeTally())
        return self.tally.other_types

    def _add_type(self, into: TypeTally, other: TypeTally) -> None:
        into.events += other.events
        into.users |= other.users
        into.other_paths += other.other_paths
        for path, views in other.paths.items():
            if self._keeps(path):
                into.paths[path] += views
            else:
                into.other_paths += views
        if other.other_dims:
            into.other_dims.update(other.other_dims)
        for dimension, values in sorted(other.dims.items()):
            counts = into.dims.get(dimension)
            for value, views in sorted(values.items()):
                if not self._keeps_value(dimension, value):
                    into.other_dims[dimension if dimension in self.kept_values else OTHER_PROPS] += views
                    continue
                if counts is None:
                    counts = into.dims[dimension] = Counter()
                counts[value] += views

    def _keeps(self, path: str) -> bool:
        """Whether the path is kept, keeping it if there is room."""
        if path in self.kept:
            return True
        size = stored_size(path)
        if len(self.kept) >= self.caps.paths or self.kept_bytes + size > self.caps.path_bytes:
            return False
        self.kept.add(path)
        self.kept_bytes += size
        return True

    def _keeps_value(self, dimension: str, value: str) -> bool:
        """Whether the dimension's value is kept, keeping it (and a prop's key) if there is room."""
        kept = self.kept_values.get(dimension)
        if kept is None:
            if dimension.startswith(PROP_PREFIX):
                if self.kept_props >= self.caps.prop_keys:
                    return False
                self.kept_props += 1
            kept = self.kept_values[dimension] = set()
            self.kept_value_bytes[dimension] = 0
        if value in kept:
            return True
        size = stored_size(value)
        if (
            len(kept) >= self.caps.dimension_values
            or self.kept_value_bytes[dimension] + size > self.caps.value_bytes
        ):
            return False
        kept.add(value)
        self.kept_value_bytes[dimension] += size
        return True


def stored_size(name: str) -> int:
    """The bytes a path's name, or a dimension's value, takes in a stored rollup."""
    return len(orjson.dumps(name))


def bucket_tallies(
    events: Iterable[Mapping[str, Any]], caps: Caps, withheld: Mapping[str, Collection[str]] | None = None
) -> dict[Bucket, Tally]:
    """Tallies of stored event documents, users as integer ids, by the rollups they add into,
    each within the caps. `withheld`: batch id -> ids of rollups that must not count that
    batch's events (their share of it is set aside, to be added when replayed)."""
    withheld = withheld or {}
    events = list(events)
    groups: list[tuple[Collection[str], list[Mapping[str, Any]]]] = [
        ((), [event for event in events if event.get("batch_id") not in withheld])
    ]
    groups += [
        (rollup_ids, [event for event in events if event.get("batch_id") == batch_id])
        for batch_id, rollup_ids in withheld.items()
    ]
    quarterly = [
        (site_quarter, skipped, tally)
        for skipped, group in groups
        for site_quarter, tally in quarter_tallies(group).items()
    ]
    tallies: dict[Bucket, CappedTally] = {}
    for (site_id, quarter), skipped, tally in sorted(quarterly, key=lambda item: item[0][1]):
        for bucket in containing_buckets(site_id, quarter):
            if bucket.id not in skipped:
                tallies.setdefault(bucket, CappedTally(Tally(), caps)).add(tally)
    return {bucket: capped.tally for bucket, capped in tallies.items()}
