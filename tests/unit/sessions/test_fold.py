"""Visits folded by the compactor from the rollups' stream: stored batches, then compaction
rounds; each event counts once in its visit however a round dies, is isolated or replayed."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.rollups import compactor
from app.sessions import fold
from app.sessions.assign import visits_of
from app.store import events as event_store
from app.store import rollups as rollup_store
from app.store import visits as visit_store
from reporting import queries
from reporting.periods import Period
from tasks.persist import store_batch
from tools.factories import make_message

START = datetime(2025, 11, 15, 10, 0, tzinfo=UTC)
SITE = "shop"


def at(minutes: float, path: str | None = "/", user: str | None = "alice", **fields):
    moment = START + timedelta(minutes=minutes)
    return make_message(site_id=SITE, user_id=user, path=path, timestamp=moment.isoformat(), **fields)


def summaries(db):
    """Each visit as (visitor, entry, exit, pages, events, duration), sorted."""
    return sorted(
        (
            visit["visitor"],
            visit.get("entry_page"),
            visit.get("exit_page"),
            visit["page_count"],
            visit["event_count"],
            visit["duration"],
        )
        for visit in db[visit_store.VISITS].find({"site_id": SITE})
    )


def failing_once(real, error, when=lambda *args: True):
    """`real`, but raising `error` the first time `when(*args)` holds."""
    failed: list[bool] = []

    def once(*args, **kwargs):
        if not failed and when(*args):
            failed.append(True)
            raise error
        return real(*args, **kwargs)

    return once


def test_a_visit_records_its_pages_entry_exit_and_duration(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0, "/"), at(3, "/pricing"), at(5, None, event_type="signup")])
    store_batch(db, counter_store, "b2", [at(12, "/docs")])
    compactor.compact(db, counter_store)
    [visit] = db[visit_store.VISITS].find()
    assert visit_store.find_visit(db, visit["_id"]) == {
        "_id": visit["_id"],
        "site_id": SITE,
        "visitor": "alice",
        "start": START,
        "end": START + timedelta(minutes=12),
        "entry_page": "/",
        "entry_at": START,
        "exit_page": "/docs",
        "exit_at": START + timedelta(minutes=12),
        "page_count": 3,
        "event_count": 4,
        "duration": 720,
    }


def test_a_visits_id_begins_with_its_site_and_the_time_of_the_event_that_opened_it(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0), at(100)])
    compactor.compact(db, counter_store)
    opened = visit_store.visits_opened_between(
        db, SITE, START + timedelta(minutes=50), START + timedelta(hours=3)
    )
    assert [visit["start"] for visit in opened] == [START + timedelta(minutes=100)]


def test_visits_split_at_a_pause_and_each_visitor_has_their_own(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0, "/"), at(12, "/pricing"), at(13, "/blog", "bob")])
    store_batch(db, counter_store, "b2", [at(40, "/signup"), at(120, "/")])
    compactor.compact(db, counter_store)
    assert summaries(db) == [
        ("alice", "/", "/", 1, 1, 0),
        ("alice", "/", "/signup", 3, 3, 2400),
        ("bob", "/blog", "/blog", 1, 1, 0),
    ]


def test_an_event_arriving_late_becomes_the_entry(db, counter_store):
    store_batch(db, counter_store, "b1", [at(5, "/pricing")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b2", [at(1, "/")])
    compactor.compact(db, counter_store)
    assert summaries(db) == [("alice", "/", "/pricing", 2, 2, 240)]


def test_a_late_batch_of_an_earlier_visit_is_one_visit_not_one_per_event(db, counter_store):
    """A visitor's earlier visit arrives after a later one (a Segment SDK flushing events
    queued offline, an import of history, a dead letter replayed): its five events, 5 minutes
    apart, are one visit, which the state follows once its first event opened it."""
    store_batch(db, counter_store, "live", [at(300, "/today")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "late", [at(minute, f"/p{minute}") for minute in (0, 5, 10, 15, 20)])
    compactor.compact(db, counter_store)
    events = event_store.events_between(db, SITE, START, START + timedelta(hours=6))
    assert len(visits_of(events)) == 2  # the cross-check, in time order
    assert summaries(db) == [
        ("alice", "/p0", "/p20", 5, 5, 1200),
        ("alice", "/today", "/today", 1, 1, 0),
    ]


def test_a_visit_whose_start_moves_back_more_than_an_hour_is_still_counted(db, counter_store):
    """Earlier events of a visit arrive later, each within 30 minutes of the visit's first:
    its start moves back past LATE_START (from the 01:30 that keys it to 23:25 the day
    before): it is keyed again by its first event, so its day's breakdown counts it."""
    opening = datetime(2025, 11, 16, 1, 30, tzinfo=UTC)
    for back in range(6):  # 01:30, 01:05, 00:40, 00:15, 23:50, 23:25
        moment = opening - timedelta(minutes=25 * back)
        store_batch(db, counter_store, f"b{back}", [at((moment - START).total_seconds() / 60, f"/{back}")])
        compactor.compact(db, counter_store)
    [visit] = db[visit_store.VISITS].find()
    assert visit["start"] == datetime(2025, 11, 15, 23, 25, tzinfo=UTC)

    def entries(day: date) -> list[str]:
        period = Period(SITE, day, day, ZoneInfo("UTC"))
        return [row.value for row in queries.breakdown(db, period, "entry_page", 10, 0).results]

    counted = entries(date(2025, 11, 15)) + entries(date(2025, 11, 16))
    assert counted == ["/5"]


def moving_back(db, counter_store, *minutes: float) -> None:
    """A visit's events arriving latest first, each in a round of its own."""
    for minute in minutes:
        store_batch(db, counter_store, f"b{minute}", [at(minute, f"/{minute}")])
        compactor.compact(db, counter_store)


@pytest.mark.parametrize("dying", ["visits", "forwarding", "states", "deleting"])
def test_a_round_that_dies_while_keying_a_visit_again_counts_it_once(db, counter_store, monkeypatch, dying):
    """The fourth event moves the visit's start 75 minutes before its key (minute 90): the
    round keys it again by that event, and dies at one of its steps; the next round ends
    the job. A forwarding document left by a round that died after the states names no
    visitor's visit and is never read."""
    moving_back(db, counter_store, 90, 65, 40)
    store_batch(db, counter_store, "b15", [at(15, "/15")])
    away = RedisConnectionError("Redis away")

    def forwarding(documents) -> bool:
        return any("moved_to" in document for document in documents)

    steps = {
        "visits": lambda db, name, documents, *rest: name == visit_store.VISITS and not forwarding(documents),
        "forwarding": lambda db, name, documents, *rest: forwarding(documents),
        "states": lambda db, name, *rest: name == visit_store.VISIT_STATES,
    }
    if dying == "deleting":
        monkeypatch.setattr(visit_store, "delete_visits", failing_once(visit_store.delete_visits, away))
    else:
        monkeypatch.setattr(visit_store, "save", failing_once(visit_store.save, away, steps[dying]))
    with pytest.raises(RedisConnectionError):
        compactor.compact(db, counter_store)
    compactor.compact(db, counter_store)
    day = timedelta(days=1)
    [visit] = visit_store.visits_opened_between(db, SITE, START - day, START + day)
    assert visit["_id"] == event_store.stored_key(SITE, START + timedelta(minutes=15), visit["_id"][-36:])
    assert (visit["entry_page"], visit["exit_page"], visit["event_count"]) == ("/15", "/90", 4)
    [state] = db[visit_store.VISIT_STATES].find()
    assert state["current"] == visit["_id"]
    left = 1 if dying == "deleting" else 0
    assert db[visit_store.VISITS].count_documents({"moved_to": {"$exists": True}}) == left


def test_a_batch_delivered_again_counts_once_in_its_visits(db, counter_store):
    batch = [at(0, "/"), at(4, "/pricing"), at(9, "/signup")]
    store_batch(db, counter_store, "b1", batch)
    store_batch(db, counter_store, "b1", batch)  # appended again, in the same round
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", batch)  # and in a later one
    compactor.compact(db, counter_store)
    assert summaries(db) == [("alice", "/", "/signup", 3, 3, 540)]


def test_events_without_an_identity_have_no_visit(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0, user=None)])
    compactor.compact(db, counter_store)
    assert summaries(db) == []


def test_with_visits_off_a_worker_hands_no_rows(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0)], visits=False)
    compactor.compact(db, counter_store)
    assert summaries(db) == []


def test_a_cookieless_visit_goes_on_across_midnight_under_the_new_days_id(db, counter_store):
    evening = make_message(site_id=SITE, user_id=None, path="/", timestamp="2025-11-15T23:50:00Z")
    store_batch(db, counter_store, "b1", [{**evening, "visitor_id": "a" * 32}])
    compactor.compact(db, counter_store)
    after = {
        **make_message(site_id=SITE, user_id=None, path="/after", timestamp="2025-11-16T00:10:00Z"),
        "visitor_id": "b" * 32,
        "previous_visitor_id": "a" * 32,
    }
    store_batch(db, counter_store, "b2", [after])
    compactor.compact(db, counter_store)
    assert summaries(db) == [("a" * 32, "/", "/after", 2, 2, 1200)]


@pytest.mark.parametrize("collection", [visit_store.VISITS, visit_store.VISIT_STATES])
def test_a_round_that_dies_while_writing_the_visits_adds_nothing_twice(
    db, counter_store, monkeypatch, collection
):
    """Dying after the visits are saved and before the states (or before anything): the
    next round assigns the same visits, and each visit's `through` skips what it holds."""
    store_batch(db, counter_store, "b0", [at(0, "/")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [at(4, "/pricing"), at(100, "/")])
    away = RedisConnectionError("Redis away")  # a server's condition: the round is tried again whole
    monkeypatch.setattr(
        visit_store, "save", failing_once(visit_store.save, away, lambda db, name, *rest: name == collection)
    )
    with pytest.raises(RedisConnectionError):
        compactor.compact(db, counter_store)
    compactor.compact(db, counter_store)
    assert summaries(db) == [("alice", "/", "/", 1, 1, 0), ("alice", "/", "/pricing", 2, 2, 240)]
    assert compactor.backlog(counter_store) == 0


def compact_dying_before_the_markers(db, counter_store, monkeypatch):
    """A round that dies after saving the visits and the rollups, before its markers (Redis
    away: a server's condition, so the round is tried again whole), then the next round."""
    away = RedisConnectionError("Redis away")
    monkeypatch.setattr(
        rollup_store, "mark_batches_applied", failing_once(rollup_store.mark_batches_applied, away)
    )
    with pytest.raises(RedisConnectionError):
        compactor.compact(db, counter_store)
    compactor.compact(db, counter_store)


def test_a_round_that_dies_before_marking_its_batches_adds_nothing_twice(db, counter_store, monkeypatch):
    """The states were saved: folded again, the round's first event would find its visitor's
    state moved two visits on and open a visit of its own; its visitor's `through` skips it."""
    store_batch(db, counter_store, "b0", [at(10, "/pricing")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [at(0, "/"), at(100, "/"), at(200, "/")])
    compact_dying_before_the_markers(db, counter_store, monkeypatch)
    assert summaries(db) == [
        ("alice", "/", "/", 1, 1, 0),
        ("alice", "/", "/", 1, 1, 0),
        ("alice", "/", "/pricing", 2, 2, 600),
    ]


def test_a_round_that_only_widened_its_visits_and_died_before_its_markers_adds_nothing_twice(
    db, counter_store, monkeypatch
):
    """No visit opened, so the state was not rewritten: folded again, 20 now lies within 30
    minutes of the visit 35 widened (the current one), which holds the round's entries."""
    store_batch(db, counter_store, "b0", [at(0, "/"), at(60, "/later")])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b1", [at(20, "/a"), at(35, "/b")])
    compact_dying_before_the_markers(db, counter_store, monkeypatch)
    assert summaries(db) == [("alice", "/", "/a", 2, 2, 1200), ("alice", "/b", "/later", 2, 2, 1500)]
    assert db[visit_store.VISIT_STATES].count_documents({}) == 1


def test_an_entry_set_aside_and_replayed_folds_its_visits_once(db, counter_store, monkeypatch):
    """A round's rollups refused for a reason of the entries' own: the round is isolated, an
    entry at a time, each entry's share set aside and later replayed; a share carries no
    visit rows."""
    store_batch(db, counter_store, "b0", [at(0, "/")])
    store_batch(db, counter_store, "b1", [at(4, "/pricing")])
    refused = ValueError("a rollup too large")  # not a server's condition

    def refusing(db, documents, *args, **kwargs):
        raise refused

    monkeypatch.setattr(rollup_store, "save_rollups", refusing)
    compactor.compact(db, counter_store)
    assert compactor.set_aside(counter_store) == 2
    assert summaries(db) == [("alice", "/", "/pricing", 2, 2, 240)]
    monkeypatch.undo()
    compactor.replay_set_aside(db, counter_store)
    compactor.compact(db, counter_store)
    compactor.compact(db, counter_store)
    assert (compactor.backlog(counter_store), compactor.set_aside(counter_store)) == (0, 0)
    assert summaries(db) == [("alice", "/", "/pricing", 2, 2, 240)]


def test_a_round_reads_its_visitors_a_slice_at_a_time(db, counter_store, monkeypatch):
    monkeypatch.setattr(fold, "IDS_PER_SLICE", 2)
    store_batch(db, counter_store, "b1", [at(minute, user=f"user-{minute}") for minute in range(5)])
    store_batch(db, counter_store, "b2", [at(minute + 10, user=f"user-{minute}") for minute in range(5)])
    compactor.compact(db, counter_store)
    assert [visit[4] for visit in summaries(db)] == [2] * 5


def test_a_rebuild_leaves_the_visits_as_they_are(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0, "/"), at(4, "/pricing")])
    compactor.compact(db, counter_store)
    before = summaries(db)
    compactor.rebuild(db, counter_store, SITE, START.date(), START.date())
    assert summaries(db) == before


def test_a_rebuild_does_not_fold_the_visits_of_a_batch_whose_entry_was_lost(db, counter_store):
    """Whether a lost entry was folded before it was lost is not known: its batch's visits
    are left as they are (here, none), its rollups rebuilt."""
    lost = [at(0, "/"), at(4, "/pricing")]
    event_store.insert_events(db, lost, "lost-batch")  # stored, but its entry never appended
    db[event_store.EVENTS].update_many({}, {"$set": {"created_at": datetime.now(UTC) - timedelta(hours=2)}})
    compactor.rebuild(db, counter_store, SITE, START.date(), START.date())
    compactor.compact(db, counter_store)
    period = Period(SITE, START.date(), START.date(), ZoneInfo("UTC"))
    assert queries.summary(db, period, 10).total_views == 2
    assert summaries(db) == []


def test_a_rebuild_does_not_fold_again_a_lost_entry_that_was_folded(db, counter_store, monkeypatch):
    """A round folds a batch's visits and adds its rollups, then dies before its markers
    (Redis away); the entry is then lost with Redis's last second of writes. `rebuild`, the
    repair for lost entries, appends the batch again for the rollups, without its rows."""
    store_batch(db, counter_store, "b1", [at(0, "/"), at(4, "/pricing")])
    away = RedisConnectionError("Redis away")
    monkeypatch.setattr(
        rollup_store, "mark_batches_applied", failing_once(rollup_store.mark_batches_applied, away)
    )
    with pytest.raises(RedisConnectionError):
        compactor.compact(db, counter_store)
    counter_store.delete(compactor.stream_key(compactor.shard_of(SITE)))  # lost with Redis's data
    db[event_store.EVENTS].update_many({}, {"$set": {"created_at": datetime.now(UTC) - timedelta(hours=2)}})
    compactor.rebuild(db, counter_store, SITE, START.date(), START.date())
    compactor.compact(db, counter_store)
    period = Period(SITE, START.date(), START.date(), ZoneInfo("UTC"))
    assert queries.summary(db, period, 10).total_views == 2  # the rollups: exact
    assert summaries(db) == [("alice", "/", "/pricing", 2, 2, 240)]


def test_a_long_identity_keys_its_state_by_its_hash(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0, user="u" * 256), at(5, user="u" * 256)])
    compactor.compact(db, counter_store)
    [state] = db[visit_store.VISIT_STATES].find()
    assert len(state["_id"]) == len(SITE) + 1 + 64
    assert summaries(db) == [("u" * 256, "/", "/", 2, 2, 300)]
