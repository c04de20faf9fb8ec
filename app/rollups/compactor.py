"""Keeping the rollups exact: workers append per-batch deltas, one compactor adds them up.

Neither FerretDB (no atomic `$inc`, no transactions) nor a redelivered task lets many
workers update a counting document safely. So:

1. A worker that stored a batch appends the batch's hourly tallies to a Redis stream, in the
   same round trip that settles the batch (`append_batch`). It counts only the events that
   batch itself stored (`event_store.owned_events`), so a redelivery appends the same delta again.
2. One compactor at a time (a Redis lock) reads the stream in order and adds each delta into
   its site's hour, day and week rollups, which only it writes (`compact`). Each rollup remembers
   the last stream entry added into it (`through`), and each batch gets a marker once added
   (`rollup_store.mark_batches_applied`), so neither a crash halfway nor a batch appended twice
   counts anything twice. Entries leave the stream only after that.

Rollups therefore trail the stored events by one compaction round (`backlog` says how many
batches wait); `rebuild` recomputes them from the raw events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import redis
from pymongo.database import Database
from redis.lock import Lock

from app.rollups import user_ids
from app.rollups.buckets import WEEK, Bucket, containing_buckets, floor_to
from app.rollups.tally import Tally, bucket_tallies, hourly_tallies
from app.store import events as event_store
from app.store import rollups as rollup_store

logger = logging.getLogger(__name__)

STREAM_KEY = "analytics:rollups:deltas"
LOCK_KEY = "analytics:rollups:lock"
# Hash: site id -> how many times its rollups changed, so cached answers can tell they are stale.
GENERATIONS_KEY = "analytics:rollups:generations"
# The compactor's lock expires this long after its holder last extended it, so the rollups
# of a worker killed while compacting wait no longer than this for another worker. The holder
# extends it before every few rollup writes, and a holder that lost it stops writing.
LOCK_SECONDS = 15
WRITES_PER_EXTENSION = 20
# Entries a round adds up: a round rewrites each rollup it touches once, so more is cheaper.
ENTRIES_PER_ROUND = 2000
# The `through` of a rollup that holds no stream entry (Redis's smallest stream id).
NO_ENTRY = "0-0"
# `rebuild` counts events of a batch the compactor has not added yet only when the batch is
# older than this: its own delta is surely lost then, while a younger batch's may still come.
ORPHAN_AGE = timedelta(hours=1)


def append_batch(pipe: redis.client.Pipeline, batch_id: str, events: Iterable[Mapping[str, Any]]) -> None:
    """Add 'append this batch's hourly tallies to the stream' to the pipeline's commands;
    the events' users are ids (`user_ids.numbered`)."""
    deltas = [
        {"site_id": site_id, "hour": hour.isoformat(), "types": tally.to_document()}
        for (site_id, hour), tally in hourly_tallies(events).items()
    ]
    if deltas:
        pipe.xadd(STREAM_KEY, {"batch": batch_id, "deltas": json.dumps(deltas)})


def backlog(client: redis.Redis) -> int:
    """Batches appended and not yet added into the rollups."""
    return cast(int, client.xlen(STREAM_KEY))


def _lock(client: redis.Redis) -> Lock:
    return client.lock(LOCK_KEY, timeout=LOCK_SECONDS)


def compact(db: Database[Any], client: redis.Redis) -> int:
    """Add the deltas waiting when called into the rollups, unless another compactor is at it;
    return how many stream entries were consumed. Deltas appended meanwhile wait for the
    next call, so a call ends even while workers keep appending."""
    lock = _lock(client)
    if not lock.acquire(blocking=False):
        return 0
    try:
        return _drain(db, client, lock, _last_stream_id(client))
    finally:
        lock.release()


def _drain(db: Database[Any], client: redis.Redis, lock: Lock, last: str) -> int:
    """Add the stream's entries up to `last` into the rollups, ENTRIES_PER_ROUND at a time."""
    consumed = 0
    while entries := _read(client, last):
        lock.reacquire()
        _apply(db, client, lock, entries)
        client.xdel(STREAM_KEY, *(entry.stream_id for entry in entries))
        consumed += len(entries)
    return consumed


@dataclass(frozen=True)
class Entry:
    stream_id: str
    batch_id: str
    deltas: list[dict[str, Any]]


def _read(client: redis.Redis, last: str) -> list[Entry]:
    rows = cast(
        list[tuple[bytes, dict[bytes, bytes]]], client.xrange(STREAM_KEY, max=last, count=ENTRIES_PER_ROUND)
    )
    return [
        Entry(stream_id.decode(), fields[b"batch"].decode(), json.loads(fields[b"deltas"]))
        for stream_id, fields in rows
    ]


def _stream_order(stream_id: str) -> tuple[int, int]:
    milliseconds, sequence = stream_id.split("-")
    return int(milliseconds), int(sequence)


def _apply(db: Database[Any], client: redis.Redis, lock: Lock, entries: list[Entry]) -> None:
    """Add the entries' deltas into the rollups, skipping batches already added and entries a
    rollup already holds (an earlier round that stopped halfway), then mark the batches."""
    first_of_batch = {entry.batch_id: entry for entry in reversed(entries)}
    applied = rollup_store.applied_batches(db, first_of_batch)
    fresh = [entry for entry in first_of_batch.values() if entry.batch_id not in applied]
    fresh.sort(key=lambda entry: _stream_order(entry.stream_id))
    buckets = {
        bucket
        for entry in fresh
        for delta in entry.deltas
        for bucket in containing_buckets(delta["site_id"], datetime.fromisoformat(delta["hour"]))
    }
    stored = rollup_store.rollup_documents(db, (bucket.id for bucket in buckets))
    rollups = {bucket: Rollup.load(bucket, stored.get(bucket.id)) for bucket in buckets}
    for entry in fresh:
        for delta in entry.deltas:
            tally = Tally.from_document(delta["types"])
            for bucket in containing_buckets(delta["site_id"], datetime.fromisoformat(delta["hour"])):
                rollups[bucket].add(entry.stream_id, tally)
    _save(db, client, lock, rollups.values(), entries[-1].stream_id)
    rollup_store.mark_batches_applied(db, [entry.batch_id for entry in fresh])


def _save(
    db: Database[Any], client: redis.Redis, lock: Lock, rollups: Iterable[Rollup], through: str
) -> None:
    sites = set()
    for written, rollup in enumerate(rollups):
        if written % WRITES_PER_EXTENSION == 0:
            lock.reacquire()  # raises LockNotOwnedError, stopping the writes, if it expired
        rollup_store.save_rollup(db, rollup.document(through))
        sites.add(rollup.bucket.site_id)
    if sites:
        pipe = client.pipeline(transaction=False)
        for site_id in sites:
            pipe.hincrby(GENERATIONS_KEY, site_id, 1)
        pipe.execute()


def generation(client: redis.Redis, site_id: str) -> int:
    """A number that changes whenever the site's rollups do."""
    return int(cast(bytes | None, client.hget(GENERATIONS_KEY, site_id)) or 0)


@dataclass
class Rollup:
    """A rollup being updated: its tally and the last stream entry added into it."""

    bucket: Bucket
    tally: Tally
    through: str

    @classmethod
    def load(cls, bucket: Bucket, document: Mapping[str, Any] | None) -> Rollup:
        if document is None:
            return cls(bucket, Tally(), NO_ENTRY)
        return cls(bucket, Tally.unpack(document["tally"]), document["through"])

    def add(self, stream_id: str, tally: Tally) -> None:
        if _stream_order(stream_id) > _stream_order(self.through):
            self.tally.add(tally)

    def document(self, through: str) -> dict[str, Any]:
        return rollup_store.rollup_document(self.bucket, self.tally, through)


class CompactorBusyError(RuntimeError):
    """The compactor's lock stayed taken for longer than a rebuild waits."""


def _last_stream_id(client: redis.Redis) -> str:
    try:
        info = client.xinfo_stream(STREAM_KEY)
    except redis.ResponseError:  # no stream yet
        return NO_ENTRY
    last = info["last-generated-id"]
    return last.decode() if isinstance(last, bytes) else str(last)


def rebuild(db: Database[Any], client: redis.Redis, site_id: str, first_day: date, last_day: date) -> int:
    """Recompute a site's rollups of the UTC weeks holding `first_day`..`last_day` from its
    raw events; return how many events they count.

    Holds the compactor's lock and first adds every waiting delta, so it knows which batches
    the rollups hold. It then counts each event whose batch the compactor has added, plus
    those of batches older than ORPHAN_AGE that it never added (their delta was lost); those
    batches are marked added. Younger batches are left to their deltas, still to come.
    """
    lock = _lock(client)
    if not lock.acquire(blocking=True, blocking_timeout=2 * LOCK_SECONDS):
        raise CompactorBusyError(f"another compactor held the lock for {2 * LOCK_SECONDS} s; try again")
    try:
        # Drained up to here: an entry appended later is newer than `through`, and its
        # batch is unmarked, so the rollups count it once, from the entry.
        through = _last_stream_id(client)
        _drain(db, client, lock, through)
        # Whole weeks: a week's rollup counts every day of it.
        start = floor_to(datetime.combine(first_day, datetime.min.time(), tzinfo=UTC), "week")
        end = floor_to(datetime.combine(last_day, datetime.min.time(), tzinfo=UTC), "week") + WEEK
        events = event_store.events_between(db, site_id, start, end)
        counted = _countable(db, events)
        tallies = bucket_tallies(user_ids.numbered(client, counted))
        hours = (start + timedelta(hours=n) for n in range((end - start) // timedelta(hours=1)))
        buckets = {bucket for hour in hours for bucket in containing_buckets(site_id, hour)}
        rebuilt = (Rollup(bucket, tallies.get(bucket, Tally()), NO_ENTRY) for bucket in buckets)
        _save(db, client, lock, rebuilt, through)
        return len(counted)
    finally:
        lock.release()


def _countable(db: Database[Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    batch_ids = {event.get("batch_id") for event in events}
    applied = rollup_store.applied_batches(db, (batch_id for batch_id in batch_ids if batch_id))
    orphan_before = datetime.now(UTC) - ORPHAN_AGE
    orphans = {
        event.get("batch_id")
        for event in events
        if event.get("batch_id") not in applied and event["created_at"] < orphan_before
    }
    rollup_store.mark_batches_applied(db, (batch_id for batch_id in orphans if batch_id))
    return [event for event in events if event.get("batch_id") in applied | orphans]
