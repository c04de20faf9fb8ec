"""The `events` collection: the stored events, keyed by site, time and event id, with their
indexes, and the reads of a site's raw events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from app.enrichment import DERIVED_FIELDS
from app.rollups.dimensions import DIMENSIONS, PROP_PREFIX
from app.store import DUPLICATE_KEY, find_by_ids, insert_new, raise_unconfirmed
from app.store import migrations as migration_store
from app.store.errors import is_transient
from app.visitors import identity

EVENTS = "events"

# Separates the parts of an event's `_id`: a control character, which no site id holds (the
# schema refuses them), so a site's keys are exactly those beginning `<site_id>\x1f`.
KEY_SEPARATOR = "\x1f"

EVENT_INDEXES = [
    # Exactly-once per site: a retry of an event is refused even when its copy carries another
    # timestamp, and so another `_id` (a client that lets the server stamp its events).
    IndexModel([("site_id", ASCENDING), ("event_id", ASCENDING)], name="site_id_1_event_id_1", unique=True),
]
# Indexes earlier versions created, dropped where they exist: raw reads now go by `_id`.
RETIRED_INDEXES = ("site_id_1", "user_id_1", "timestamp_1", "site_id_1_timestamp_1", "event_id_1")


def ensure_indexes(db: Database[Any]) -> None:
    """Give `events` its indexes, on MongoDB and FerretDB alike, and drop the retired ones;
    idempotent."""
    existing = set(db[EVENTS].index_information())
    for name in sorted(existing & set(RETIRED_INDEXES)):
        db[EVENTS].drop_index(name)
    db[EVENTS].create_indexes(EVENT_INDEXES)


def key_time(moment: datetime) -> str:
    """A UTC time as keys hold it, to the millisecond (what a BSON date keeps): fixed width, so
    that keys sort in time order."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment  # (a naive BSON date is UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def event_key(message: Mapping[str, Any]) -> str:
    """The `_id` an event message is stored under, and its dead letter too (the one place
    that says how an event is keyed): its site, its UTC time and its event id, so that a
    site's events of a period are one range of `_id`, in time order, which both servers read
    from an index."""
    return stored_key(message["site_id"], datetime.fromisoformat(message["timestamp"]), message["event_id"])


def stored_key(site_id: str, moment: datetime, event_id: str) -> str:
    """The key of a site's event at `moment`: an event's `_id`, and its visit's when it
    opened one (app/sessions/assign.py)."""
    return KEY_SEPARATOR.join((site_id, key_time(moment), event_id))


def site_range(site_id: str, start: datetime | None = None, end: datetime | None = None) -> dict[str, str]:
    """The `_id` condition of a site's events with `start <= timestamp < end` (either end
    open when None), to the millisecond, as the servers compare the timestamps (a BSON date
    keeps milliseconds)."""
    prefix = site_id + KEY_SEPARATOR
    lower = prefix + (key_time(start) if start is not None else "")
    upper = prefix + key_time(end) if end is not None else site_id + chr(ord(KEY_SEPARATOR) + 1)
    return {"$gte": lower, "$lt": upper}


# What a page knows, and what ingestion derived, stored as received when present (absent
# values are left out, not stored as null), and what the worker derived from them
# (`app.enrichment`). The visitor's user agent is not among them: the worker reads it, and
# it is not kept.
PAGE_FIELDS = ("url", "referrer", "title", "screen", "language", "props", "visitor_id", "country")
STORED_FIELDS = (*PAGE_FIELDS, *DERIVED_FIELDS)


def event_document(message: Mapping[str, Any], now: datetime, batch_id: str | None = None) -> dict[str, Any]:
    """The stored form of one queued event message (see `app.schemas.EventSchema`), once
    enriched (`app.enrichment.enrich`).

    `batch_id` records which queued batch stored the event (see `owned_events`).
    """
    document = {
        "_id": event_key(message),
        "event_id": message["event_id"],
        "batch_id": batch_id,
        "site_id": message["site_id"],
        "event_type": message["event_type"],
        "path": message.get("path"),
        "user_id": message.get("user_id"),
        "timestamp": datetime.fromisoformat(message["timestamp"]).astimezone(UTC),
        "created_at": now,
        "updated_at": now,
    }
    document.update((name, message[name]) for name in STORED_FIELDS if message.get(name) is not None)
    return document


@dataclass
class InsertOutcome:
    """What storing a batch did: events new to the store, events it already held, and events
    the store refused."""

    inserted: list[Mapping[str, Any]] = field(default_factory=list)
    # The stored documents of `inserted`, in the same order.
    documents: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[Mapping[str, Any]] = field(default_factory=list)
    rejected: list[tuple[Mapping[str, Any], str]] = field(default_factory=list)


def insert_events(
    db: Database[Any], messages: Sequence[Mapping[str, Any]], batch_id: str | None = None
) -> InsertOutcome:
    """Store queued event messages of one batch in one round trip.

    Events already stored (same site and `event_id`) are skipped, so storing the same messages again
    changes nothing. Events the server refuses for any other reason come back in `rejected`
    with the server's message. Connection errors, timeouts, an unmet write concern
    (`WriteConcernError`) and write errors of the server's condition (`is_transient`: a write
    conflict, a busy store) are raised, for the whole batch to be tried again.
    """
    if not messages:
        return InsertOutcome()
    now = datetime.now(UTC)
    documents = [event_document(m, now, batch_id) for m in messages]
    try:
        db[EVENTS].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        raise_unconfirmed(error)
        if is_transient(error):  # a write error of the server's condition (a write conflict ...)
            raise
        failed = {e["index"]: e for e in error.details["writeErrors"]}
        return InsertOutcome(
            inserted=[m for i, m in enumerate(messages) if i not in failed],
            documents=[d for i, d in enumerate(documents) if i not in failed],
            duplicates=[messages[i] for i, e in failed.items() if e["code"] == DUPLICATE_KEY],
            rejected=[
                (messages[i], e.get("errmsg", "rejected"))
                for i, e in failed.items()
                if e["code"] != DUPLICATE_KEY
            ],
        )
    return InsertOutcome(inserted=list(messages), documents=documents)


def stored_events(db: Database[Any], messages: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored events of these messages, by the messages' keys: each looked up by its key,
    and those not found there by their site and event id, in case a copy with another
    timestamp was stored, within RETRY_STAMPS of the message's (one query per site and
    stretch of nearby timestamps, over that part of the site's `_id` range)."""
    by_key = {event_key(message): message for message in messages}
    found = find_by_ids(db[EVENTS], by_key)
    found.update(_unmoved_events(db, [message for key, message in by_key.items() if key not in found]))
    missing: dict[str, list[Mapping[str, Any]]] = {}
    for key, message in by_key.items():
        if key not in found:
            missing.setdefault(message["site_id"], []).append(message)
    for site_id, site_messages in missing.items():
        for start, end, nearby in _stretches(site_messages):
            keys = {message["event_id"]: event_key(message) for message in nearby}
            query = {
                "_id": site_range(site_id, start, end),
                "site_id": site_id,
                "event_id": {"$in": list(keys)},
            }
            for event in db[EVENTS].find(query):
                found[keys[event["event_id"]]] = event
    return found


# How far apart the timestamps of two copies of an event may be for `stored_events` to find one
# from the other. A copy under another timestamp is a client's retry of an event the server
# stamped on arrival (a client stamping its events sends the same timestamp again): the two
# differ by how long the client waited to retry, which is seconds to hours (an answer lost, a
# network down). A copy further apart is not found: its message is dead-lettered, and the
# letter's replay is refused as a duplicate and counted once. The bound keeps the read to a
# few days of the site's events, never its whole history.
RETRY_STAMPS = timedelta(days=1)


def _stretches(
    messages: list[Mapping[str, Any]],
) -> Iterator[tuple[datetime, datetime, list[Mapping[str, Any]]]]:
    """Messages in time order, gathered into stretches whose windows of RETRY_STAMPS either
    side of each timestamp overlap: each stretch's start, end and messages."""
    timed = sorted(
        ((datetime.fromisoformat(message["timestamp"]), message) for message in messages), key=lambda p: p[0]
    )
    start, end = timed[0][0] - RETRY_STAMPS, timed[0][0] + RETRY_STAMPS
    nearby: list[Mapping[str, Any]] = []
    for moment, message in timed:
        if moment - RETRY_STAMPS > end:
            yield start, end, nearby
            start, nearby = moment - RETRY_STAMPS, []
        end = moment + RETRY_STAMPS
        nearby.append(message)
    yield start, end, nearby


def owned_events(
    db: Database[Any], batch_id: str, messages: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The stored events of these messages that batch `batch_id` stored (not another batch
    carrying the same event, such as a client's retry), each looked up by its message's key:
    a batch stores its messages under their own keys."""
    by_key = {event_key(message): message for message in messages}
    found = find_by_ids(db[EVENTS], by_key)
    unmoved = _unmoved_events(db, [message for key, message in by_key.items() if key not in found])
    found.update((key, event) for key, event in unmoved.items() if event["_id"] == key)
    return [event for event in found.values() if event.get("batch_id") == batch_id]


def _unmoved_events(db: Database[Any], messages: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Until `migrate-store` has moved the previous release's events (LAYOUT_STEP): the events
    of these messages still keyed by bare event id, or set aside in MOVING_EVENTS, by the
    messages' keys, each under the `_id` the migration gives it. A batch the previous
    release's worker died storing, redelivered to this release's, finds its events there
    (refused as duplicates by the (site, event id) index)."""
    if not messages or LAYOUT_STEP in migration_store.done_steps(db):
        return {}
    by_event = {(message["site_id"], message["event_id"]): event_key(message) for message in messages}
    event_ids = [event_id for _, event_id in by_event]
    candidates = [
        *find_by_ids(db[EVENTS], event_ids).values(),
        *db[MOVING_EVENTS].find({"event_id": {"$in": event_ids}}),  # at most a migration batch
    ]
    found = {}
    for event in candidates:
        event_id = event.get("event_id") or event["_id"]
        key = by_event.get((event["site_id"], event_id))
        if key is not None:
            found[key] = {**event, "_id": stored_key(event["site_id"], event["timestamp"], event_id)}
    return found


def _site_events_filter(site_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Events of one site with `start <= timestamp < end`: the `_id` range the servers read
    from an index, and the timestamps, for the exact interval."""
    return {"_id": site_range(site_id, start, end), "timestamp": {"$gte": start, "$lt": end}}


# Events a raw read fetches per round trip.
STREAM_BATCH = 1000
RAW_FIELDS = (
    "site_id",
    "event_id",
    "event_type",
    "path",
    "user_id",
    "visitor_id",
    "timestamp",
    "batch_id",
    "created_at",
    "props",
    *DIMENSIONS,
)


def events_between(db: Database[Any], site_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A site's stored events with `start <= timestamp < end`, in time order: what statistics
    count, and which batch stored each event when."""
    return list(iter_site_events(db, site_id, start, end))


def iter_site_events(
    db: Database[Any], site_id: str, start: datetime, end: datetime, batch_size: int = STREAM_BATCH
) -> Iterator[dict[str, Any]]:
    """A site's stored events with `start <= timestamp < end`, streamed in time order (by
    `_id`) `batch_size` at a time: the first arrive as soon as the server has read them, not
    once it has read the period."""
    projection = {"_id": 0, **dict.fromkeys(RAW_FIELDS, 1)}
    cursor = db[EVENTS].find(_site_events_filter(site_id, start, end), projection)
    return iter(cursor.sort("_id", ASCENDING).batch_size(batch_size))


def first_event_time(db: Database[Any], site_id: str) -> datetime | None:
    """The time of a site's oldest stored event (the first of its `_id` range), if any."""
    found = db[EVENTS].find_one({"_id": site_range(site_id)}, {"timestamp": 1}, sort=[("_id", ASCENDING)])
    return None if found is None else found["timestamp"]


def count_by_user_and_path(
    db: Database[Any], site_id: str, start: datetime, end: datetime, event_type: str | None
) -> list[dict[str, Any]]:
    """A site's events with `start <= timestamp < end` (of one type, if given) counted by
    (user, path), the user as `app.visitors.identity` names them, as rows
    `{"_id": {"user", "path"}, "events"}`: `/stats/aggregated`'s cross-check.

    Counted here, from the events' users and paths read by `_id` range: FerretDB's `$group`
    compares each event with every group found so far, a cost that grows with the square of
    a site-day's users (docs/decisions/events-keyed-by-site-and-time.md).
    """
    events_filter = _site_events_filter(site_id, start, end)
    if event_type is not None:
        events_filter["event_type"] = event_type
    projection = {"_id": 0, "user_id": 1, "visitor_id": 1, "path": 1}
    found = db[EVENTS].find(events_filter, projection).batch_size(STREAM_BATCH)
    counts = Counter((identity(event), event.get("path")) for event in found)
    return [{"_id": {"user": user, "path": path}, "events": n} for (user, path), n in counts.items()]


def field_values(
    db: Database[Any], site_id: str, start: datetime, end: datetime, event_type: str | None, name: str
) -> Iterator[dict[str, Any]]:
    """One field of a site's events with `start <= timestamp < end` (of one type, if given),
    streamed (`props` for a `prop:<key>`): `/stats/aggregated?by=`'s cross-check of a
    breakdown, read by `_id` range as `count_by_user_and_path` reads."""
    events_filter = _site_events_filter(site_id, start, end)
    if event_type is not None:
        events_filter["event_type"] = event_type
    read = "props" if name.startswith(PROP_PREFIX) else name
    return iter(db[EVENTS].find(events_filter, {"_id": 0, read: 1}).batch_size(STREAM_BATCH))


def expired_keys(db: Database[Any], site_id: str, before: datetime, limit: int) -> list[str]:
    """The keys of up to `limit` of a site's oldest events, of those before `before`."""
    query = {"_id": site_range(site_id, end=before)}
    return [event["_id"] for event in db[EVENTS].find(query, {"_id": 1}).sort("_id", ASCENDING).limit(limit)]


def delete_events(db: Database[Any], keys: list[str]) -> None:
    """Delete the events of these keys."""
    _delete_by_id(db[EVENTS], keys)


# The previous release keyed events by bare event id (no separator). `flask migrate-store`
# moves them MIGRATION_BATCH at a time, with no update (FerretDB's are slow): copied aside
# into MOVING_EVENTS under their keys, deleted, copied back, then cleared from MOVING_EVENTS. A
# run stopped anywhere is finished by the next (`restore_moving_events` first); only between
# a batch's deletion and its copying back may a retry of one of its events be stored as new.
LAYOUT_STEP = "events-keyed-by-site-and-time"
MIGRATION_BATCH = 500
MOVING_EVENTS = "events_moving"
PREVIOUS_LAYOUT = {"_id": {"$regex": f"^[^{KEY_SEPARATOR}]*$"}}


def previous_layout_events(db: Database[Any]) -> Iterator[dict[str, Any]]:
    """The events still keyed as the previous release keyed them, streamed (a scan of the
    collection on FerretDB: once, for a migration)."""
    return iter(db[EVENTS].find(PREVIOUS_LAYOUT).batch_size(MIGRATION_BATCH))


def rekey_events(db: Database[Any], documents: Sequence[dict[str, Any]]) -> int:
    """Move these events of the previous layout under their keys; return how many."""
    if not documents:
        return 0
    copies = [
        {
            **document,
            "_id": stored_key(
                document["site_id"], document["timestamp"], document.get("event_id") or document["_id"]
            ),
        }
        for document in documents
    ]
    insert_new(db[MOVING_EVENTS], copies)
    _delete_by_id(db[EVENTS], [document["_id"] for document in documents])
    _put_back(db, copies)
    return len(documents)


def restore_moving_events(db: Database[Any]) -> int:
    """Put back the events a stopped migration had set aside; return how many."""
    copies = list(db[MOVING_EVENTS].find())
    if copies:
        _put_back(db, copies)
    return len(copies)


def _put_back(db: Database[Any], copies: list[dict[str, Any]]) -> None:
    # A duplicate: not yet deleted by a stopped run (moved again later), or a retry stored meanwhile.
    insert_new(db[EVENTS], copies)
    _delete_by_id(db[MOVING_EVENTS], [copy["_id"] for copy in copies])


def _delete_by_id(collection: Collection[Any], ids: list[str]) -> None:
    """Delete the documents of these `_id`s: one `$in`, which both servers (FerretDB as the
    project builds it) find by the `_id` index."""
    collection.delete_many({"_id": {"$in": ids}})


# What an export leaves out of a stored event: the service's own bookkeeping, and the visit
# that events stored by earlier versions with VISITS=1 name (visits are assigned anew).
INTERNAL_FIELDS = ("batch_id", "created_at", "updated_at", "visit_id")
# What it reads of each: every other field `event_document` writes, named, since FerretDB
# reads a projection that names its fields without copying each document whole (one that
# leaves fields out copies it).
EXPORTED_FIELDS = ("_id", "site_id", "event_type", "path", "user_id", "timestamp", "event_id", *STORED_FIELDS)


def site_events_page(
    db: Database[Any], site_id: str, start: datetime, end: datetime, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` of a site's stored events with `start <= timestamp < end`, in `_id` order,
    after the key `after` when given, each with its `_id` and without INTERNAL_FIELDS: one page
    of an export, read from the `_id` index."""
    events_filter = _site_events_filter(site_id, start, end)
    if after is not None and after >= events_filter["_id"]["$gte"]:
        events_filter["_id"] = {"$gt": after, "$lt": events_filter["_id"]["$lt"]}
    projection = dict.fromkeys(EXPORTED_FIELDS, 1)
    found = db[EVENTS].find(events_filter, projection).sort("_id", ASCENDING).limit(limit)
    return list(found.batch_size(min(limit, STREAM_BATCH)))
