"""How much one rollup keeps: at most so many distinct paths (and so many bytes of them) and
so many event types, whatever the input, so that no rollup nears MongoDB's 16 MiB limit for
a document however many distinct paths a site (or a bot) sends.

First come, first kept: a path or event type is kept when its rollup meets it while under
its cap, and stays kept, counted exactly. What comes later is counted apart: the views of a
path not kept in its type's `other_paths`, the events of a type not kept in the tally's
`other_types` (with their users and paths, so the totals stay exact). A rollup adds its
batches in stream order, and within one batch's delta types and paths come in name order.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.rollups.buckets import Bucket, containing_buckets
from app.rollups.tally import Tally, TypeTally, quarter_tallies
from app.settings import Settings

# The longest path in characters the API accepts: the paths kept may take on average this
# many bytes each as stored (JSON), so paths of characters of four bytes, or of characters
# JSON escapes, make a rollup keep fewer paths, not more bytes.
PATH_BYTES = 2048


@dataclass(frozen=True)
class Caps:
    """The most paths and event types one rollup keeps."""

    paths: int
    event_types: int

    @classmethod
    def of(cls, settings: Settings) -> Caps:
        return cls(settings.rollup_max_paths, settings.rollup_max_event_types)

    @property
    def path_bytes(self) -> int:
        return self.paths * PATH_BYTES


DEFAULT_CAPS = Caps.of(Settings())


class CappedTally:
    """A rollup's tally being added to within its caps. It remembers the paths it keeps, so
    that adding a batch costs the batch's size, not the rollup's."""

    def __init__(self, tally: Tally, caps: Caps) -> None:
        self.tally = tally
        self.caps = caps
        self.kept = set(tally.paths)
        self.kept_bytes = sum(stored_size(path) for path in self.kept)

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


def stored_size(path: str) -> int:
    """The bytes a path's name takes in a stored rollup."""
    return len(orjson.dumps(path))


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
