"""The rollups' migration steps: users' numbers out of Redis into MongoDB, and the quarter
rollups of what earlier releases compacted, on mongomock and an in-memory Redis."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from app import migrations
from app.rollups import user_ids
from app.store import migrations as migration_store
from app.store import rollups as rollup_store
from app.store import user_numbers
from reporting import queries
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tests.unit.reporting.test_time_zones import events_around
from tools.factories import make_event

LONG = "L" * 256


def numbers_as_an_earlier_release_kept_them(counter_store):
    counter_store.hset(f"{user_ids.PREFIX}:site-a", mapping={"ann": 1, "bob": 2, LONG: 5})
    counter_store.hset(f"{user_ids.PREFIX}:next", mapping={"zoe": 1})  # a site named "next"
    counter_store.hset(user_ids.LAST_IDS_KEY, mapping={"site-a": 5, "next": 1})


def test_users_numbers_move_from_redis_to_mongodb_and_leave_redis(db, counter_store):
    numbers_as_an_earlier_release_kept_them(counter_store)
    ran = migrations.migrate(db, counter_store, before_compacting=True)
    assert ran == [("user-numbers-to-mongodb", "4 users' numbers of 2 sites moved from Redis to MongoDB")]
    assert counter_store.keys("analytics:user-id*") == []
    assert user_ids.ids_by_site(db, {"site-a": ["bob", LONG, "cy"], "next": ["zoe", "yan"]}) == {
        "site-a": {"bob": 2, LONG: 5, "cy": 6},
        "next": {"zoe": 1, "yan": 2},
    }
    assert migrations.migrate(db, counter_store, before_compacting=True) == []


def test_a_move_cut_short_is_run_again_and_counts_each_user_once(db, counter_store, monkeypatch):
    numbers_as_an_earlier_release_kept_them(counter_store)
    raise_counter = user_numbers.raise_counter

    def dying_once(*args):
        monkeypatch.setattr(user_numbers, "raise_counter", raise_counter)
        raise ConnectionError("killed")

    monkeypatch.setattr(user_numbers, "raise_counter", dying_once)
    with pytest.raises(ConnectionError):
        migrations.migrate(db, counter_store, before_compacting=True)
    assert counter_store.exists(user_ids.LAST_IDS_KEY)  # nothing deleted before it was stored
    migrations.migrate(db, counter_store, before_compacting=True)
    assert db[user_numbers.USER_NUMBERS].count_documents({}) == 4
    assert user_ids.ids_by_site(db, {"site-a": ["ann", "dee"]}) == {"site-a": {"ann": 1, "dee": 6}}


def test_the_quarters_of_an_earlier_release_s_rollups_are_rebuilt(db, store, counter_store, monkeypatch):
    """An earlier release's compactor left hour, day and week rollups but no quarter."""
    store([*events_around(date(2025, 11, 15), "site-a"), make_event(site_id="site-b")])
    db[rollup_store.ROLLUPS].delete_many({"level": "quarter"})
    db[migration_store.MIGRATIONS].delete_many({})  # the earlier release recorded none
    migrations.migrate(db, counter_store, before_compacting=True)
    ran = dict(migrations.migrate(db, counter_store))
    # site-a's events (the 14th to the 16th, one week) and site-b's
    assert ran["quarter-rollups"] == "2 site-weeks rebuilt with their quarter hours (618 events)"
    assert migrations.migrate(db, counter_store) == []
    reads = []
    monkeypatch.setattr(queries.event_store, "events_between", lambda *args: reads.append(args))
    period = Period("site-a", date(2025, 11, 15), date(2025, 11, 15), ZoneInfo("Asia/Kolkata"))
    assert summary(db, period, 100) == summary_from_pipeline(db, period, 100)
    assert reads == []


def test_a_user_mongodb_numbered_otherwise_meanwhile_is_reported(db, counter_store):
    """A worker of this release that numbered `ann` before the move keeps its number: the
    rollups counted with Redis's may need a rebuild, so the move says how many."""
    numbers_as_an_earlier_release_kept_them(counter_store)
    user_numbers.insert(db, "site-a", {user_numbers.user_key("site-a", "ann"): 9})
    ran = migrations.migrate(db, counter_store, before_compacting=True)
    assert ran == [
        (
            "user-numbers-to-mongodb",
            "4 users' numbers of 2 sites moved from Redis to MongoDB; 1 already numbered otherwise "
            "in MongoDB kept its number (rebuild those sites' rollups)",
        )
    ]
