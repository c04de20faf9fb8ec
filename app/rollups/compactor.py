"""Keeping the rollups exact: workers append per-batch deltas, compactors add them up.

Neither FerretDB (no atomic `$inc`, no transactions) nor a redelivered task lets many
workers update a counting document safely. So:

1. A worker that stored a batch appends the batch's hourly tallies to Redis streams, in the
   same round trip that settles the batch (`append_batch`), users by name: the compactor
   gives them their ids (`user_ids`) once a round. It counts only the events that
   batch itself stored (`event_store.owned_events`), so a redelivery appends the same delta
   again. Sites are spread over SHARDS streams by a stable hash of the site id, and a batch
   appends one entry to each shard its events fall in.
2. One compactor per shard at a time (a Redis lock per shard) reads that shard's stream in
   order and adds each delta into its site's hour, day and week rollups, which only it writes
   (`compact`). So every worker's compactor can work at once, on different shards, and no
   rollup ever has two writers: a thread keeps the lock while its holder works, the holder
   checks it before every write, and each write carries the hold's fencing token, so a
   holder that stalled past the lock's expiry cannot overwrite a newer holder's rollups
   (`lease`). Each rollup remembers the last entry of its shard added into it (`through`,
   which never moves back), and each batch gets a marker per shard once added
   (`rollup_store.mark_batches_applied`), so neither a crash halfway nor a batch appended
   twice counts anything twice. Entries leave the stream only after that.
3. A round always makes progress: it takes at most ENTRIES_PER_ROUND entries and adds them
   into their rollups BUCKETS_PER_ROUND rollups at a time, each part saved (with its
   `through`) before the next is read, and deletes the entries it added before it takes
   more. However wide a backlog (an import across many sites and days), a round that dies
   keeps the parts it saved, and each rollup is written once a round.
4. A round that fails for a reason of an entry's own (not a server's condition, see
   `app/store/errors.py`) is tried again an entry at a time, and of the entry that fails,
   the part its rollups do not hold yet is set aside as a share of its own (`_set_aside`);
   the rest of it is in, so its batch is marked. A share, replayed, goes into those rollups
   alone and counts once: it is recognised by its own marker, named after the original entry.

Rollups therefore trail the stored events by one compaction round (`backlog` says how many
entries wait); `rebuild` recomputes them from the raw events.
"""

from __future__ import annotations

import json
import logging
import random
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from typing import Any, cast

import redis
from pymongo.database import Database
from redis.exceptions import RedisError

from app.rollups import lease, user_ids
from app.rollups.buckets import WEEK, Bucket, containing_buckets, floor_to
from app.rollups.caps import DEFAULT_CAPS, CappedTally, Caps, bucket_tallies
from app.rollups.tally import Tally, hourly_documents
from app.store import events as event_store
from app.store import rollups as rollup_store
from app.store.errors import is_transient

logger = logging.getLogger(__name__)

# Shard n's stream of deltas and its lock: `analytics:rollups:deltas:{n}`, `...:lock:{n}`.
STREAM_PREFIX = "analytics:rollups:deltas"
LOCK_PREFIX = "analytics:rollups:lock"
# How many shards sites are spread over: at most this many compactors work at once. Changing
# it moves sites between streams, so drain the backlog (or rebuild) before changing it.
SHARDS = 8
# Stream: the shares of entries whose adding failed for a reason of their own (not a server's
# condition), with the error, until `replay_set_aside` appends them to their shard's stream.
SET_ASIDE_KEY = "analytics:rollups:set-aside"
# The fields of a set-aside share that go back into its shard's stream when replayed.
REPLAYED_FIELDS = (b"batch", b"of", b"deltas", b"only")
# Hash: site id -> how many times its rollups changed, so cached answers can tell they are stale.
GENERATIONS_KEY = "analytics:rollups:generations"
# A compactor's lock expires this long after it was last extended, so the rollups of a worker
# killed while compacting wait no longer than this for another worker. A thread of the holder
# extends it a few times within this while the holder works, and the holder checks it before
# every write (`lease`).
LOCK_SECONDS = 15
# Rollups read, or written, a command or a few at a time: a slice.
ROLLUPS_PER_SLICE = 200
# Entries a round reads: a round rewrites each rollup it touches once, so a larger round is
# cheaper per entry, but holds its entries in memory and the shard's rollups back for longer.
ENTRIES_PER_ROUND = 2000
# Rollups a round holds in memory at once: a round whose entries touch more adds them in parts.
BUCKETS_PER_ROUND = 5000
# Site-hours whose rollups are remembered: an import's entries name the same ones again.
SITE_HOURS_CACHED = 16_384
# The `through` of a rollup that holds no stream entry (Redis's smallest stream id).
NO_ENTRY = "0-0"
# `rebuild` counts events of a batch the compactor has not added yet only when the batch is
# older than this: its own delta is surely lost then, while a younger batch's may still come.
ORPHAN_AGE = timedelta(hours=1)


def shard_of(site_id: str) -> int:
    """The shard of a site's rollups: stable across processes and restarts."""
    return zlib.crc32(site_id.encode()) % SHARDS


def stream_key(shard: int) -> str:
    return f"{STREAM_PREFIX}:{shard}"


def lock_key(shard: int) -> str:
    return f"{LOCK_PREFIX}:{shard}"


def marker(batch_id: str, shard: int) -> str:
    """The id recording that a batch's entry of one shard is in the rollups."""
    return f"{batch_id}@{shard}"


def append_batch(pipe: redis.client.Pipeline, batch_id: str, events: Iterable[Mapping[str, Any]]) -> None:
    """Add 'append this batch's hourly tallies to the streams of their shards' to the
    pipeline's commands. The users go by name: the compactor gives them their ids
    (`user_ids`) once a round, which spares every batch a round trip of its own."""
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for (site_id, hour), types in hourly_documents(events).items():
        delta = {"site_id": site_id, "hour": hour.isoformat(), "types": types}
        by_shard.setdefault(shard_of(site_id), []).append(delta)
    for shard, deltas in by_shard.items():
        pipe.xadd(stream_key(shard), {"batch": marker(batch_id, shard), "deltas": json.dumps(deltas)})


def backlog(client: redis.Redis) -> int:
    """Entries appended and not yet added into the rollups, over all shards."""
    pipe = client.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.xlen(stream_key(shard))
    return sum(cast(list[int], pipe.execute()))


def oldest_pending(client: redis.Redis) -> float | None:
    """When the oldest delta not yet in the rollups was appended, in epoch seconds, if any is."""
    pipe = client.pipeline(transaction=False)
    for shard in range(SHARDS):
        pipe.xrange(stream_key(shard), count=1)
    firsts = [rows[0][0] for rows in cast(list[list[tuple[bytes, Any]]], pipe.execute()) if rows]
    return min((_stream_order(stream_id.decode())[0] / 1000 for stream_id in firsts), default=None)


def compact(db: Database[Any], client: redis.Redis, caps: Caps = DEFAULT_CAPS) -> int:
    """Add the deltas waiting when called into the rollups, each rollup within `caps`, in
    every shard no other compactor is at; return how many stream entries were consumed.
    Deltas appended meanwhile wait for the next call, so a call ends even while workers keep
    appending. Shards are visited from a random one, so compactors started together spread
    over them."""
    first = random.randrange(SHARDS)
    consumed = 0
    for shard in ((first + offset) % SHARDS for offset in range(SHARDS)):
        with lease.held(client, lock_key(shard), LOCK_SECONDS) as hold:
            if hold is not None:
                consumed += _drain(db, client, hold, shard, _last_stream_id(client, shard), caps)
    return consumed


def _passes(error: Exception) -> bool:
    """Whether a round failed on the servers (away, busy, the lock lost), not on its entries:
    it is then tried again whole, nothing set aside."""
    return isinstance(error, RedisError | rollup_store.StaleWriteError) or is_transient(error)


def _drain(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, shard: int, last: str, caps: Caps
) -> int:
    """Add the shard's entries up to `last` into the rollups, a bounded round at a time,
    deleting each round's entries once they are added (or set aside)."""
    consumed = 0
    while entries := _read(client, shard, last):
        try:
            _apply(db, client, hold, entries, caps)
            done = entries
        except Exception as error:
            if _passes(error):
                raise  # the next round tries them again
            done = _isolate(db, client, hold, shard, entries, caps)
        hold.check()
        client.xdel(stream_key(shard), *(entry.stream_id for entry in done))
        consumed += len(done)
    return consumed


def _isolate(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, shard: int, entries: list[Entry], caps: Caps
) -> list[Entry]:
    """Add the entries one at a time up to the first that fails, and set aside what of that
    one its rollups do not hold, so one bad entry never stops the rest; return the entries
    done (added, or set aside in part or whole)."""
    done: list[Entry] = []
    for entry in entries:
        try:
            _apply(db, client, hold, [entry], caps)
        except Exception as error:
            if _passes(error):
                raise
            logger.exception("set aside rollup entry %s of batch %s", entry.stream_id, entry.batch_id)
            _set_aside(db, client, hold, shard, entry, error)
            return [*done, entry]
        done.append(entry)
    return done


def _set_aside(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, shard: int, entry: Entry, error: Exception
) -> None:
    """Set aside the share of `entry` that its rollups do not hold, then mark the entry's batch
    as added, which the rest of it is: a redelivered batch is skipped, and the share, with a
    marker of its own, goes into its rollups once replayed. An entry that cannot be read is
    set aside whole, its batch unmarked: nothing of it was added.

    The share's marker names the entry's batch and the entry itself: an entry set aside
    again (its compactor died before marking the batch) makes a share of the same marker,
    and only the first replayed is added."""
    fields: dict[str, Any] = {
        "shard": shard,
        "batch": f"{entry.of}/{entry.stream_id}",
        "of": entry.of,
        "deltas": entry.raw,
        "error": f"{error!r}"[:1000],
    }
    if entry.parsed is not None:
        fields["only"] = json.dumps(sorted(_not_holding(db, entry)))
    hold.check()
    client.xadd(SET_ASIDE_KEY, fields)
    if entry.parsed is not None:
        rollup_store.mark_batches_applied(db, [entry.batch_id])


def _not_holding(db: Database[Any], entry: Entry) -> set[str]:
    """The ids of the entry's rollups that do not hold it: those a round saved hold every
    entry up to their `through`, and `through` never moves back."""
    ids = {bucket.id for bucket in entry.buckets}
    stored = rollup_store.rollup_documents(db, ids)
    return {
        rollup_id
        for rollup_id in ids
        if rollup_id not in stored or _stream_order(stored[rollup_id]["through"]) < entry.order
    }


def set_aside(client: redis.Redis) -> int:
    """Entries set aside because adding them failed, waiting for `replay_set_aside`."""
    return cast(int, client.xlen(SET_ASIDE_KEY))


def replay_set_aside(client: redis.Redis) -> int:
    """Append every share set aside to its shard's stream again (after the fault that set it
    aside is fixed); return how many. Each shard's under its lock, so that no rebuild runs
    meanwhile: a rebuild leaves to each share the rollups the share names (`rebuild`)."""
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(SET_ASIDE_KEY))
    by_shard: dict[int, list[tuple[bytes, dict[bytes, bytes]]]] = {}
    for aside_id, fields in rows:
        by_shard.setdefault(int(fields[b"shard"]), []).append((aside_id, fields))
    for shard, shard_rows in by_shard.items():
        with lease.held(client, lock_key(shard), LOCK_SECONDS, wait=2 * LOCK_SECONDS) as hold:
            if hold is None:
                raise CompactorBusyError(f"another compactor held shard {shard} for {2 * LOCK_SECONDS} s")
            for aside_id, fields in shard_rows:
                pipe = client.pipeline(transaction=True)
                pipe.xadd(
                    stream_key(shard), {name: fields[name] for name in REPLAYED_FIELDS if name in fields}
                )
                pipe.xdel(SET_ASIDE_KEY, aside_id)
                pipe.execute()
    return len(rows)


def _withheld(client: redis.Redis, shard: int) -> dict[str, set[str]]:
    """The shares of `shard` set aside: the marker of the batch each belongs to -> the ids of
    the rollups that do not hold it. (Entries set aside by earlier versions name no rollups:
    their batches were never marked, and a rebuild counts them as any batch not added.)"""
    withheld: dict[str, set[str]] = {}
    for _, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(SET_ASIDE_KEY)):
        if int(fields[b"shard"]) == shard and b"only" in fields and b"of" in fields:
            withheld.setdefault(fields[b"of"].decode(), set()).update(json.loads(fields[b"only"]))
    return withheld


@dataclass(frozen=True)
class Entry:
    """A stream entry: a batch's deltas in one shard, or a share of one set aside and replayed,
    which goes into `only` of its rollups and is marked as `batch_id`, not as its batch `of`."""

    stream_id: str
    batch_id: str  # the marker written once the entry is added
    raw: bytes  # the deltas as appended
    parsed: list[dict[str, Any]] | None  # None: not valid JSON, to be set aside
    of: str  # the marker of the batch the entry belongs to (its own, but for a share)
    only: frozenset[str] | None = None  # the ids of the rollups a share goes into

    @property
    def deltas(self) -> list[dict[str, Any]]:
        if self.parsed is None:
            raise ValueError("the entry's deltas are not valid JSON")
        return self.parsed

    @cached_property
    def order(self) -> tuple[int, int]:
        return _stream_order(self.stream_id)

    @cached_property
    def deltas_with_buckets(self) -> list[tuple[dict[str, Any], tuple[Bucket, ...]]]:
        """Each delta with the rollups it goes into: worked out once, as a round needs
        them twice and an import's entry holds hundreds."""
        pairs = [(delta, _buckets_of(delta["site_id"], delta["hour"])) for delta in self.deltas]
        if self.only is None:
            return pairs
        only = self.only
        return [(delta, tuple(bucket for bucket in buckets if bucket.id in only)) for delta, buckets in pairs]

    @cached_property
    def buckets(self) -> set[Bucket]:
        return {bucket for _, buckets in self.deltas_with_buckets for bucket in buckets}


def _parsed(raw: bytes) -> list[dict[str, Any]] | None:
    try:
        deltas: list[dict[str, Any]] = json.loads(raw)
    except ValueError:
        return None
    return deltas


def _read(client: redis.Redis, shard: int, last: str) -> list[Entry]:
    rows = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        client.xrange(stream_key(shard), max=last, count=ENTRIES_PER_ROUND),
    )
    return [_entry(stream_id.decode(), fields) for stream_id, fields in rows]


def _entry(stream_id: str, fields: Mapping[bytes, bytes]) -> Entry:
    batch = fields[b"batch"].decode()
    only = frozenset(json.loads(fields[b"only"])) if b"only" in fields else None
    of = fields[b"of"].decode() if b"of" in fields else batch
    return Entry(stream_id, batch, fields[b"deltas"], _parsed(fields[b"deltas"]), of, only)


@lru_cache(maxsize=SITE_HOURS_CACHED)
def _buckets_of(site_id: str, hour: str) -> tuple[Bucket, ...]:
    """The rollups a site-hour's delta goes into."""
    return tuple(containing_buckets(site_id, datetime.fromisoformat(hour)))


def _stream_order(stream_id: str) -> tuple[int, int]:
    milliseconds, sequence = stream_id.split("-")
    return int(milliseconds), int(sequence)


def _apply(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, entries: list[Entry], caps: Caps
) -> None:
    """Add the entries' deltas into the rollups, BUCKETS_PER_ROUND rollups at a time, skipping
    batches already added and entries a rollup already holds (an earlier round that stopped
    halfway), then mark the batches. Each rollup is read and written once, however many of
    the entries touch it."""
    first_of_batch = {entry.batch_id: entry for entry in reversed(entries)}
    applied = rollup_store.applied_batches(db, first_of_batch)
    fresh = [entry for entry in first_of_batch.values() if entry.batch_id not in applied]
    fresh.sort(key=lambda entry: entry.order)
    numbers = _user_ids(client, fresh)
    buckets = sorted(set().union(*(entry.buckets for entry in fresh)), key=lambda bucket: bucket.id)
    for start in range(0, len(buckets), BUCKETS_PER_ROUND):
        part = buckets[start : start + BUCKETS_PER_ROUND]
        _add_into(db, client, hold, part, fresh, numbers, entries[-1].stream_id, caps)
    hold.check()
    rollup_store.mark_batches_applied(db, [entry.batch_id for entry in fresh])


def _add_into(
    db: Database[Any],
    client: redis.Redis,
    hold: lease.Lease,
    buckets: list[Bucket],
    entries: list[Entry],
    numbers: Mapping[str, dict[str, int]],
    through: str,
    caps: Caps,
) -> None:
    """Read the rollups of `buckets` (sorted), add the entries' deltas into them and save
    those that changed. Saved, they hold `through`, the round's last entry, so a round that
    dies after keeps them."""
    stored: dict[str, dict[str, Any]] = {}
    for start in range(0, len(buckets), ROLLUPS_PER_SLICE):
        ids = (bucket.id for bucket in buckets[start : start + ROLLUPS_PER_SLICE])
        stored.update(rollup_store.rollup_documents(db, ids))
    rollups = {bucket: Rollup.load(bucket, stored.get(bucket.id), caps) for bucket in buckets}
    for entry in entries:
        for delta, delta_buckets in entry.deltas_with_buckets:
            targets = [rollups[bucket] for bucket in delta_buckets if bucket in rollups]
            if targets:
                tally = Tally.from_document(delta["types"], numbers.get(delta["site_id"]))
                for rollup in targets:
                    rollup.add(entry.order, tally)
    _save(db, client, hold, [rollup for rollup in rollups.values() if rollup.changed], through)


def _user_ids(client: redis.Redis, entries: list[Entry]) -> dict[str, dict[str, int]]:
    """The ids of the users the entries name, by site, in one round trip. (Entries appended
    by earlier versions carry ids already.)"""
    users_by_site: dict[str, set[str]] = {}
    for entry in entries:
        for delta in entry.deltas:
            users = users_by_site.setdefault(delta["site_id"], set())
            users.update(user for row in delta["types"] for user in row["users"] if isinstance(user, str))
    return user_ids.ids_by_site(client, users_by_site)


def _save(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, rollups: list[Rollup], through: str
) -> None:
    """Save the rollups a slice at a time, each write after a check of the lock. Each slice
    moves its sites' generations before it is written (no answer cached earlier outlives the
    write) and after, even when the write failed partway (nor one computed meanwhile)."""
    documents = [rollup.document(through, hold.fence) for rollup in rollups]
    new = {rollup.bucket.id for rollup in rollups if rollup.new}
    for start in range(0, len(documents), ROLLUPS_PER_SLICE):
        part = documents[start : start + ROLLUPS_PER_SLICE]
        sites = {document["site_id"] for document in part}
        _move_generations(client, sites)
        try:
            rollup_store.save_rollups(db, part, new, before_each_write=hold.check)
        finally:
            _move_generations(client, sites)


def _move_generations(client: redis.Redis, sites: Iterable[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for site_id in sites:
        pipe.hincrby(GENERATIONS_KEY, site_id, 1)
    pipe.execute()


def generation(client: redis.Redis, site_id: str) -> int:
    """A number that changes whenever the site's rollups do."""
    return int(cast(bytes | None, client.hget(GENERATIONS_KEY, site_id)) or 0)


@dataclass
class Rollup:
    """A rollup being updated: its tally, within its caps, the last stream entry added into
    it, whether it was found absent (`new`: then it is inserted, not replaced), and whether
    anything was added to it."""

    bucket: Bucket
    tally: CappedTally
    through: str
    new: bool = False
    changed: bool = False

    @classmethod
    def load(cls, bucket: Bucket, document: Mapping[str, Any] | None, caps: Caps) -> Rollup:
        if document is None:
            return cls(bucket, CappedTally(Tally(), caps), NO_ENTRY, new=True)
        return cls(bucket, CappedTally(Tally.unpack(document["tally"]), caps), document["through"])

    @cached_property
    def through_order(self) -> tuple[int, int]:
        return _stream_order(self.through)

    def add(self, entry_order: tuple[int, int], tally: Tally) -> None:
        """Add the tally of the entry at `entry_order`, unless the rollup holds it already."""
        if entry_order > self.through_order:
            self.tally.add(tally)
            self.changed = True

    def document(self, through: str, fence: int) -> dict[str, Any]:
        """The rollup as stored, holding the entries up to `through` (a round's last entry),
        or up to its own `through` if that is later: it never moves back, or an entry it
        holds would count again."""
        latest = max(self.through, through, key=_stream_order)
        return rollup_store.rollup_document(self.bucket, self.tally.tally, latest, fence)


class CompactorBusyError(RuntimeError):
    """A shard's lock stayed taken for longer than a rebuild or a replay waits."""


def _last_stream_id(client: redis.Redis, shard: int) -> str:
    try:
        info = client.xinfo_stream(stream_key(shard))
    except redis.ResponseError:  # no stream yet
        return NO_ENTRY
    last = info["last-generated-id"]
    return last.decode() if isinstance(last, bytes) else str(last)


def rebuild(
    db: Database[Any],
    client: redis.Redis,
    site_id: str,
    first_day: date,
    last_day: date,
    caps: Caps = DEFAULT_CAPS,
) -> int:
    """Recompute a site's rollups of the UTC weeks holding `first_day`..`last_day` from its
    raw events, each within `caps`; return how many events they count.

    Holds the lock of the site's shard (kept however long the raw read takes) and first adds
    every delta waiting there, so it knows which batches the rollups hold. It then counts each
    event whose batch the compactor has added, plus those of batches older than ORPHAN_AGE
    that it never added (their delta was lost); those batches are marked added. Younger
    batches are left to their deltas, still to come, and a batch's share set aside to its
    replay: the rollups that share names do not count the batch.
    """
    shard = shard_of(site_id)
    with lease.held(client, lock_key(shard), LOCK_SECONDS, wait=2 * LOCK_SECONDS) as hold:
        if hold is None:
            raise CompactorBusyError(f"another compactor held the lock for {2 * LOCK_SECONDS} s; try again")
        # Drained up to here: an entry appended later is newer than `through`, and its
        # batch is unmarked, so the rollups count it once, from the entry.
        through = _last_stream_id(client, shard)
        _drain(db, client, hold, shard, through, caps)
        withheld = _withheld(client, shard)
        # Whole weeks: a week's rollup counts every day of it.
        start = floor_to(datetime.combine(first_day, datetime.min.time(), tzinfo=UTC), "week")
        end = floor_to(datetime.combine(last_day, datetime.min.time(), tzinfo=UTC), "week") + WEEK
        events = event_store.events_between(db, site_id, start, end)
        counted = _countable(db, hold, shard, events)
        shares = {
            event["batch_id"]: withheld[marker(event["batch_id"], shard)]
            for event in counted
            if marker(event["batch_id"], shard) in withheld
        }
        tallies = bucket_tallies(user_ids.numbered(client, counted), caps, shares)
        hours = (start + timedelta(hours=n) for n in range((end - start) // timedelta(hours=1)))
        buckets = {bucket for hour in hours for bucket in containing_buckets(site_id, hour)}
        rebuilt = [
            Rollup(bucket, CappedTally(tallies.get(bucket, Tally()), caps), NO_ENTRY) for bucket in buckets
        ]
        _save(db, client, hold, rebuilt, through)
        return len(counted)


def _countable(
    db: Database[Any], hold: lease.Lease, shard: int, events: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The events of batches whose entry in `shard` the rollups hold, and of batches old
    enough that their entry was lost (marked as held from now on)."""
    stored = [event for event in events if event.get("batch_id")]
    markers = {event["batch_id"]: marker(event["batch_id"], shard) for event in stored}
    applied = rollup_store.applied_batches(db, markers.values())
    orphan_before = datetime.now(UTC) - ORPHAN_AGE
    orphans = {
        markers[event["batch_id"]]
        for event in stored
        if markers[event["batch_id"]] not in applied and event["created_at"] < orphan_before
    }
    hold.check()
    rollup_store.mark_batches_applied(db, orphans)
    counted = applied | orphans
    return [event for event in stored if markers[event["batch_id"]] in counted]
