"""Keeping the rollups exact: workers append per-batch deltas, compactors add them up.

Neither FerretDB (no atomic `$inc`, no transactions) nor a redelivered task lets many
workers update a counting document safely. So:

1. A worker that stored a batch appends the batch's tallies per quarter hour to Redis streams, in the
   same round trip that settles the batch (`append_batch`), users by name: the compactor
   gives them their ids (`user_ids`) once a round; and a row per stored event for the
   visits, which the compactor folds before the tallies (app/sessions/fold.py). It counts
   only the events that batch itself stored (`event_store.owned_events`), so a redelivery
   appends the same delta again. Sites are spread over SHARDS streams by a stable hash of
   the site id, and a batch appends one entry to each shard its events fall in.
2. One compactor per shard at a time (a Redis lock per shard) reads that shard's stream in
   order and adds each delta into its site's quarter, hour, day and week rollups, which only it writes
   (`compact`). So every worker's compactor can work at once, on different shards, and no
   rollup ever has two writers: a thread keeps the lock while its holder works, the holder
   checks it before every write, and each write carries the hold's fencing token, so a
   holder that stalled past the lock's expiry cannot overwrite a newer holder's rollups
   (`lease`). Each rollup remembers the last entry of its shard added into it (`through`,
   which never moves back), and each batch gets a marker per shard once added
   (`rollup_store.mark_batches_applied`), so neither a crash halfway nor a batch appended
   twice counts anything twice. Entries leave the stream only after that. Markers are
   written only after the rollups that hold their batches, so a stalled holder's late
   marker never names a batch that no rollup holds.
3. A round always makes progress: it takes at most ENTRIES_PER_ROUND entries and adds them
   into their rollups BUCKETS_PER_ROUND rollups at a time, each part saved (with its
   `through`) before the next is read, and deletes the entries it added before it takes
   more. However wide a backlog (an import across many sites and days), a round that dies
   keeps the parts it saved, and each rollup is written once a round. Each shard's rounds
   fail alone.
4. A round that fails for a reason of an entry's own (not a server's condition, see
   `app/store/errors.py`) is tried again an entry at a time, and of the entry that fails,
   the part its rollups do not hold yet is set aside as a share of its own, together with
   the fact that the rest of its batch is in (`shares`); an entry that cannot be read is set
   aside whole. A share, replayed, goes into those rollups alone and counts once: it is
   recognised by its own marker, named after the original entry.

Rollups therefore trail the stored events by one compaction round (`backlog` says how many
entries wait); `rebuild` recomputes them from the raw events.
"""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import Any, cast

import orjson
import redis
from pymongo.database import Database
from redis.exceptions import RedisError

from app.rollups import entries, generations, lease, shares, user_ids
from app.rollups.buckets import QUARTER, WEEK, Bucket, containing_buckets, floor_to
from app.rollups.caps import DEFAULT_CAPS, CappedTally, Caps, bucket_tallies
from app.rollups.entries import NO_ENTRY, Entry, stream_order
from app.rollups.tally import Tally, quarter_documents
from app.sessions import prune
from app.sessions.fold import fold_visits
from app.store import events as event_store
from app.store import expired, fenced
from app.store import rollups as rollup_store
from app.store.errors import is_transient

logger = logging.getLogger(__name__)

# Shard n's stream of deltas and its lock: `analytics:rollups:deltas:{n}`, `...:lock:{n}`.
STREAM_PREFIX = "analytics:rollups:deltas"
LOCK_PREFIX = "analytics:rollups:lock"
# How many shards sites are spread over: at most this many compactors work at once. Changing
# it moves sites between streams, so drain the backlog (or rebuild) before changing it.
SHARDS = 8
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


def append_batch(
    pipe: redis.client.Pipeline,
    batch_id: str,
    events: Iterable[Mapping[str, Any]],
    visit_rows: Mapping[str, list[list[Any]]] | None = None,
) -> None:
    """Add 'append this batch's tallies per quarter hour, and its `visit_rows` (by site,
    `app.sessions.rows.rows_of`), to the streams of their shards' to the pipeline's commands.
    The users go by name: the compactor gives them their ids (`user_ids`) once a round,
    which spares every batch a round trip of its own."""
    by_shard: dict[int, list[dict[str, Any]]] = {}
    for (site_id, quarter), types in quarter_documents(events).items():
        delta = {"site_id": site_id, "quarter": quarter.isoformat(), "types": types}
        by_shard.setdefault(shard_of(site_id), []).append(delta)
    rows_by_shard: dict[int, list[list[Any]]] = {}
    for site_id, rows in (visit_rows or {}).items():
        rows_by_shard.setdefault(shard_of(site_id), []).extend(rows)
    for shard in sorted(by_shard.keys() | rows_by_shard.keys()):
        fields = {"batch": marker(batch_id, shard), "deltas": orjson.dumps(by_shard.get(shard, []))}
        if shard in rows_by_shard:
            fields["visits"] = orjson.dumps(rows_by_shard[shard])
        pipe.xadd(stream_key(shard), fields)


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
    return min((stream_order(stream_id.decode())[0] / 1000 for stream_id in firsts), default=None)


def set_aside(client: redis.Redis) -> int:
    """Shares set aside because adding their entries failed, waiting for `replay_set_aside`."""
    return shares.count(client)


@contextmanager
def _holding(client: redis.Redis, shard: int, wait: float = 0.0) -> Iterator[lease.Lease | None]:
    """The shard's lock (None if it stayed taken for `wait` seconds). Its holder first moves the
    cache generations of the sites an earlier holder was writing when it stopped."""
    with lease.held(client, lock_key(shard), LOCK_SECONDS, wait) as hold:
        if hold is not None:
            generations.move_unfinished(client, shard)
        yield hold


def compact(db: Database[Any], client: redis.Redis, caps: Caps = DEFAULT_CAPS) -> int:
    """Add the deltas waiting when called into the rollups, each rollup within `caps`, in
    every shard no other compactor is at; return how many stream entries were consumed.
    Deltas appended meanwhile wait for the next call, so a call ends even while workers keep
    appending. Shards are visited from a random one, so compactors started together spread
    over them. A shard that fails does not stop the others: the first error is raised once
    every shard had its turn, the others logged."""
    first = random.randrange(SHARDS)
    consumed = 0
    errors: list[Exception] = []
    for shard in ((first + offset) % SHARDS for offset in range(SHARDS)):
        try:
            with _holding(client, shard) as hold:
                if hold is not None:
                    consumed += _drain(db, client, hold, shard, _last_stream_id(client, shard), caps)
        except Exception as error:
            if errors:
                logger.warning("rollup compaction of shard %d failed too: %r", shard, error)
            errors.append(error)
    if errors:
        raise errors[0]
    return consumed


def prune_visit_states(db: Database[Any], client: redis.Redis, now: datetime) -> int:
    """Prune a bounded batch of visitors' states in every shard no other compactor is at
    (`app.sessions.prune`, which needs the shard's lock); return how many were deleted."""
    pruned = 0
    for shard in range(SHARDS):
        with _holding(client, shard) as hold:
            if hold is not None:
                pruned += prune.prune_states(db, hold, shard, now)
    return pruned


def _passes(error: Exception) -> bool:
    """Whether a round failed on the servers (away, busy, the lock lost), not on its entries:
    it is then tried again whole, nothing set aside."""
    return isinstance(error, RedisError | fenced.StaleWriteError) or is_transient(error)


def _drain(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, shard: int, last: str, caps: Caps
) -> int:
    """Add the shard's entries up to `last` into the rollups, a bounded round at a time,
    deleting each round's entries once they are added (or set aside)."""
    consumed = 0
    while entries_read := _read(client, shard, last):
        try:
            _apply(db, client, hold, shard, entries_read, caps)
            done = entries_read
        except Exception as error:
            if _passes(error):
                raise  # the next round tries them again
            done = _isolate(db, client, hold, shard, entries_read, caps)
        hold.check()
        client.xdel(stream_key(shard), *(entry.stream_id for entry in done))
        consumed += len(done)
    return consumed


def _isolate(
    db: Database[Any],
    client: redis.Redis,
    hold: lease.Lease,
    shard: int,
    entries_read: list[Entry],
    caps: Caps,
) -> list[Entry]:
    """Add the entries one at a time up to the first that fails, and set aside what of that
    one its rollups do not hold, so one bad entry never stops the rest; return the entries
    done (added, or set aside in part or whole)."""
    done: list[Entry] = []
    for entry in entries_read:
        try:
            _apply(db, client, hold, shard, [entry], caps)
        except Exception as error:
            if _passes(error):
                raise
            logger.exception("set aside rollup entry %s of batch %s", entry.stream_id, entry.batch_id)
            _set_aside(db, hold, shard, entry, error)
            return [*done, entry]
        done.append(entry)
    return done


def _set_aside(db: Database[Any], hold: lease.Lease, shard: int, entry: Entry, error: Exception) -> None:
    """Set aside the share of `entry` that its rollups do not hold, with the fact that the rest
    of it is in, then mark the entry as added: a redelivered batch is skipped, and the share,
    with a marker of its own, goes into its rollups once replayed. An entry that cannot be
    read is set aside whole, unmarked: nothing of it was added.

    Should marking fail, the entry stays in the stream, and the next round marks it and
    skips it, as the fact written with the share says (`shares`)."""
    if entry.malformed is not None:
        shares.put(hold, shard, entry, error, only=None)
        return
    shares.put(hold, shard, entry, error, only=_not_holding(db, entry))
    rollup_store.mark_batches_applied(db, [entry.batch_id])


def _not_holding(db: Database[Any], entry: Entry) -> set[str]:
    """The ids of the entry's rollups that do not hold it: those a round saved hold every
    entry up to their `through`, and `through` never moves back."""
    ids = {bucket.id for bucket in entry.buckets}
    stored = rollup_store.rollup_documents(db, ids)
    return {
        rollup_id
        for rollup_id in ids
        if rollup_id not in stored or stream_order(stored[rollup_id]["through"]) < entry.order
    }


def replay_set_aside(db: Database[Any], client: redis.Redis) -> int:
    """Append every share set aside to its shard's stream again (after the fault that set it
    aside is fixed); return how many. A page of shares at a time, each shard's under its lock,
    so that no rebuild runs meanwhile (a rebuild leaves to each share the rollups the share
    names), and once the entry each came from is marked (`shares`)."""
    replayed = 0
    for page in shares.pages(client):
        by_shard: dict[int, list[shares.Share]] = {}
        for share in page:
            by_shard.setdefault(share.shard, []).append(share)
        for shard, shard_shares in by_shard.items():
            with _holding(client, shard, wait=2 * LOCK_SECONDS) as hold:
                if hold is None:
                    raise CompactorBusyError(f"another compactor held shard {shard} for {2 * LOCK_SECONDS} s")
                came_from = [share.came_from for share in shard_shares if share.came_from is not None]
                hold.check()
                rollup_store.mark_batches_applied(db, came_from)
                shares.move_back(hold, stream_key(shard), shard_shares)
        replayed += len(page)
    return replayed


def _read(client: redis.Redis, shard: int, last: str) -> list[Entry]:
    rows = cast(
        list[tuple[bytes, dict[bytes, bytes]]],
        client.xrange(stream_key(shard), max=last, count=ENTRIES_PER_ROUND),
    )
    return [entries.read(stream_id.decode(), fields) for stream_id, fields in rows]


def _apply(
    db: Database[Any],
    client: redis.Redis,
    hold: lease.Lease,
    shard: int,
    entries_read: list[Entry],
    caps: Caps,
) -> None:
    """Fold the entries' rows into the visits (`fold_visits`), then add their deltas into the
    rollups, BUCKETS_PER_ROUND rollups at a time, skipping batches already added, entries of
    batches with a share set aside (the rest of them is in) and entries a rollup (or a visit)
    already holds (an earlier round that stopped halfway), then mark the batches. Each rollup
    is read and written once, however many of the entries touch it. An entry that cannot be
    read fails the round, to be set aside when the round is isolated."""
    for entry in entries_read:
        if entry.malformed is not None:
            raise entries.UnreadableEntryError(f"entry {entry.stream_id} cannot be read: {entry.malformed}")
    first_of_batch = {entry.batch_id: entry for entry in reversed(entries_read)}
    applied = rollup_store.applied_batches(db, first_of_batch)
    unmarked = [entry for entry in first_of_batch.values() if entry.batch_id not in applied]
    withheld = shares.withheld(client, shard, (entry.of for entry in unmarked))
    fresh = sorted((entry for entry in unmarked if entry.of not in withheld), key=lambda entry: entry.order)
    fold_visits(db, client, hold, shard, fresh, entries_read[-1].stream_id)
    numbers = _user_ids(db, fresh)
    buckets = sorted(set().union(*(entry.buckets for entry in fresh)), key=lambda bucket: bucket.id)
    for start in range(0, len(buckets), BUCKETS_PER_ROUND):
        part = buckets[start : start + BUCKETS_PER_ROUND]
        _add_into(db, client, hold, shard, part, fresh, numbers, entries_read[-1].stream_id, caps)
    hold.check()
    rollup_store.mark_batches_applied(db, [entry.batch_id for entry in unmarked])


def _add_into(
    db: Database[Any],
    client: redis.Redis,
    hold: lease.Lease,
    shard: int,
    buckets: list[Bucket],
    fresh: list[Entry],
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
    for entry in fresh:
        for delta, delta_buckets in entry.deltas_with_buckets:
            targets = [rollups[bucket] for bucket in delta_buckets if bucket in rollups]
            if targets:
                tally = Tally.from_document(delta["types"], numbers.get(delta["site_id"]))
                for rollup in targets:
                    rollup.add(entry.order, tally)
    # Only those that changed: one rewritten when nothing was added would cost a write and
    # move its site's cache generation for nothing.
    _save(db, client, hold, shard, [rollup for rollup in rollups.values() if rollup.changed], through)


def _user_ids(db: Database[Any], fresh: list[Entry]) -> dict[str, dict[str, int]]:
    """The ids of the users the entries name, by site. (Entries appended by earlier versions
    carry ids already.)"""
    users_by_site: dict[str, set[str]] = {}
    for entry in fresh:
        for delta in entry.deltas:
            users = users_by_site.setdefault(delta["site_id"], set())
            users.update(user for row in delta["types"] for user in row["users"] if isinstance(user, str))
    return user_ids.ids_by_site(db, users_by_site)


def _save(
    db: Database[Any], client: redis.Redis, hold: lease.Lease, shard: int, rollups: list[Rollup], through: str
) -> None:
    """Save the rollups a slice at a time, each write after a check of the lock, each slice
    within a move of its sites' cache generations (`generations.writing`)."""
    for start in range(0, len(rollups), ROLLUPS_PER_SLICE):
        part = rollups[start : start + ROLLUPS_PER_SLICE]
        with generations.writing(client, shard, {rollup.bucket.site_id for rollup in part}):
            _write(db, hold, part, through)


def _write(db: Database[Any], hold: lease.Lease, rollups: list[Rollup], through: str) -> None:
    """Write the rollups with the hold's fence (`lease.Lease.write_fenced`)."""
    new = {rollup.bucket.id for rollup in rollups if rollup.new}

    def write() -> None:
        documents = [rollup.document(through, hold.fence, hold.token) for rollup in rollups]
        rollup_store.save_rollups(db, documents, new, before_each_write=hold.check)

    hold.write_fenced(write)


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
        return stream_order(self.through)

    def add(self, entry_order: tuple[int, int], tally: Tally) -> None:
        """Add the tally of the entry at `entry_order`, unless the rollup holds it already."""
        if entry_order > self.through_order:
            self.tally.add(tally)
            self.changed = True

    def document(self, through: str, fence: int, holder: str = "") -> dict[str, Any]:
        """The rollup as stored, holding the entries up to `through` (a round's last entry),
        or up to its own `through` if that is later: it never moves back, or an entry it
        holds would count again."""
        latest = max(self.through, through, key=stream_order)
        return rollup_store.rollup_document(self.bucket, self.tally.tally, latest, fence, holder)


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
    raw events, each within `caps`, but for the weeks retention reached (`first_whole_week`),
    left as they are; return how many events they count.

    Holds the lock of the site's shard (kept however long the raw read takes) and first adds
    every delta waiting there, so it knows which batches the rollups hold. It then counts each
    event whose batch the compactor has added, but in the rollups a share set aside of that
    batch names (they are left to the share's replay). Batches older than ORPHAN_AGE that
    the compactor never added (their delta was lost) get a delta appended again, from their
    stored events, which the compactor adds like any other, markers and all; younger
    batches are left to their own deltas, still to come. A rebuild writes no marker itself:
    one it wrote, then stalled past its lock's expiry before its rollups were, would name a
    batch no rollup counts, and a newer holder would skip the batch's late delta.

    The visits are left as they are, and the batches appended again carry no rows for them:
    a lost entry may have been folded into its visits before it was lost (a round that
    died before its markers), and nothing tells which, so folding it again could count its
    events twice. A batch whose entry Redis lost keeps the visits it had, perhaps none.
    """
    shard = shard_of(site_id)
    with _holding(client, shard, wait=2 * LOCK_SECONDS) as hold:
        if hold is None:
            raise CompactorBusyError(f"another compactor held the lock for {2 * LOCK_SECONDS} s; try again")
        # Drained up to here: an entry appended later is newer than `through`, and its
        # batch is unmarked, so the rollups count it once, from the entry.
        through = _last_stream_id(client, shard)
        _drain(db, client, hold, shard, through, caps)
        # Whole weeks: a week's rollup counts every day of it.
        start = floor_to(datetime.combine(first_day, datetime.min.time(), tzinfo=UTC), "week")
        end = floor_to(datetime.combine(last_day, datetime.min.time(), tzinfo=UTC), "week") + WEEK
        start = max(start, first_whole_week(db))
        end = max(start, end)
        events = event_store.events_between(db, site_id, start, end)
        counted, orphans = _countable(db, shard, events)
        withheld = shares.withheld(client, shard, {marker(event["batch_id"], shard) for event in counted})
        left_to_shares = {
            event["batch_id"]: withheld[marker(event["batch_id"], shard)]
            for event in counted
            if marker(event["batch_id"], shard) in withheld
        }
        tallies = bucket_tallies(user_ids.numbered(db, counted), caps, left_to_shares)
        quarters = (start + n * QUARTER for n in range((end - start) // QUARTER))
        buckets = {bucket for quarter in quarters for bucket in containing_buckets(site_id, quarter)}
        stored = rollup_store.stored_rollups(db, (bucket.id for bucket in buckets))
        # A rollup that counts nothing is written only over a stored one (kept empty with its
        # fence, see `Rollup`): one never stored reads the same as an empty one.
        rebuilt = [
            Rollup(
                bucket, CappedTally(tallies.get(bucket, Tally()), caps), NO_ENTRY, new=bucket.id not in stored
            )
            for bucket in buckets
            if bucket in tallies or bucket.id in stored
        ]
        _save(db, client, hold, shard, rebuilt, through)
        if orphans:
            _drain(db, client, hold, shard, _append_again(client, orphans), caps)
        return len(counted) + len(orphans)


def first_whole_week(db: Database[Any]) -> datetime:
    """The first UTC week whose raw events retention has not touched: a rebuild leaves the
    rollups of earlier weeks as they are (counted from raw events since deleted, rebuilt they
    would count only those left)."""
    before = expired.expired_before(db)
    if before is None:
        return datetime.min.replace(tzinfo=UTC)
    week = floor_to(before, "week")
    return week if week == before else week + WEEK


def _countable(
    db: Database[Any], shard: int, events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Of `events`, those of batches whose entry in `shard` the rollups hold, and those of
    batches that hold an event older than ORPHAN_AGE and whose entry the rollups do not hold:
    their delta was lost."""
    stored = [event for event in events if event.get("batch_id")]
    markers = {event["batch_id"]: marker(event["batch_id"], shard) for event in stored}
    applied = rollup_store.applied_batches(db, markers.values())
    orphan_before = datetime.now(UTC) - ORPHAN_AGE
    lost = {
        event["batch_id"]
        for event in stored
        if markers[event["batch_id"]] not in applied and event["created_at"] < orphan_before
    }
    counted = [event for event in stored if markers[event["batch_id"]] in applied]
    return counted, [event for event in stored if event["batch_id"] in lost]


def _append_again(client: redis.Redis, events: list[dict[str, Any]]) -> str:
    """Append the deltas of the batches of `events` (one site's) again, without rows for
    the visits (`rebuild` says why); return the last entry's id."""
    by_batch: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_batch.setdefault(event["batch_id"], []).append(event)
    pipe = client.pipeline(transaction=True)
    for batch_id, batch_events in by_batch.items():
        append_batch(pipe, batch_id, batch_events)
    appended = cast(list[bytes], pipe.execute())
    return appended[-1].decode()
