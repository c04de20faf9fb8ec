"""Visitors' states pruned once their latest visit ended more than KEPT_FOR ago, a batch per
shard at a time, under the shard's lock."""

from datetime import timedelta

from redis.exceptions import ConnectionError as RedisConnectionError

from app.rollups import compactor, lease
from app.sessions import prune
from app.store import visits as visit_store
from app.store.user_numbers import user_key
from tasks import maintenance
from tasks.persist import store_batch
from tests.unit.sessions.test_fold import SITE, START, at
from tools.factories import make_message


def states(db):
    return sorted(state["_id"] for state in db[visit_store.VISIT_STATES].find())


def test_a_state_goes_once_its_latest_visit_ended_more_than_48_hours_ago(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0), at(10, user="bob")])
    store_batch(db, counter_store, "b2", [at(600, user="bob")])
    compactor.compact(db, counter_store)
    alice_gone = START + prune.KEPT_FOR + timedelta(minutes=1)
    assert compactor.prune_visit_states(db, counter_store, alice_gone - timedelta(minutes=2)) == 0
    assert compactor.prune_visit_states(db, counter_store, alice_gone) == 1
    assert states(db) == [user_key(SITE, "bob")]
    # The visits stay: retention deletes them with the raw events.
    assert db[visit_store.VISITS].count_documents({}) == 3


def test_a_state_whose_visit_went_on_is_kept_and_looked_at_later(db, counter_store):
    """A visit that goes on does not rewrite its state: the state's `until` lags, and a prune
    that finds the visit's own end recent keeps the state and records that end."""
    store_batch(db, counter_store, "b1", [at(0)])
    compactor.compact(db, counter_store)
    store_batch(db, counter_store, "b2", [at(20)])
    compactor.compact(db, counter_store)
    now = START + prune.KEPT_FOR + timedelta(minutes=10)
    assert compactor.prune_visit_states(db, counter_store, now) == 0
    [state] = db[visit_store.VISIT_STATES].find()
    assert state["until"] == START + timedelta(minutes=20)
    assert compactor.prune_visit_states(db, counter_store, now + timedelta(minutes=11)) == 1


def test_a_prune_takes_a_bounded_batch_and_the_next_goes_on(db, counter_store, monkeypatch):
    monkeypatch.setattr(prune, "BATCH_SIZE", 2)
    store_batch(db, counter_store, "b1", [at(minute, user=f"user-{minute}") for minute in range(5)])
    compactor.compact(db, counter_store)
    later = START + prune.KEPT_FOR + timedelta(hours=1)
    assert [compactor.prune_visit_states(db, counter_store, later) for _ in range(4)] == [2, 2, 1, 0]


def test_a_shard_another_compactor_holds_is_left_for_later(db, counter_store):
    store_batch(db, counter_store, "b1", [at(0)])
    compactor.compact(db, counter_store)
    later = START + prune.KEPT_FOR + timedelta(hours=1)
    shard = compactor.shard_of(SITE)
    with lease.held(counter_store, compactor.lock_key(shard), compactor.LOCK_SECONDS) as hold:
        assert hold is not None
        assert compactor.prune_visit_states(db, counter_store, later) == 0
    assert compactor.prune_visit_states(db, counter_store, later) == 1


def test_the_link_between_two_days_visitor_ids_goes_with_the_state(db, counter_store):
    """docs/visitors.md: once a day's salt is deleted, nobody can tell whether two ids of
    that day were the same person as any later id. A visit across midnight is stored as one:
    the new day's id's state names a visit whose visitor is the previous day's id, until the
    state is pruned, 48 hours after the visit ended, as the salt is."""
    evening, morning = "a" * 32, "b" * 32
    before = make_message(site_id=SITE, user_id=None, path="/", timestamp="2025-11-15T23:50:00Z")
    store_batch(db, counter_store, "b1", [{**before, "visitor_id": evening}])
    after = make_message(site_id=SITE, user_id=None, path="/after", timestamp="2025-11-16T00:10:00Z")
    store_batch(db, counter_store, "b2", [{**after, "visitor_id": morning, "previous_visitor_id": evening}])
    compactor.compact(db, counter_store)

    def linked():
        state = db[visit_store.VISIT_STATES].find_one({"_id": user_key(SITE, morning)}) or {}
        followed = visit_store.followed_ids(state)
        return {visit["visitor"] for visit in db[visit_store.VISITS].find({"_id": {"$in": followed}})}

    ended = START.replace(day=16, hour=0, minute=10)
    compactor.prune_visit_states(db, counter_store, ended + prune.KEPT_FOR - timedelta(minutes=1))
    assert evening in linked()
    compactor.prune_visit_states(db, counter_store, ended + prune.KEPT_FOR + timedelta(minutes=1))
    assert evening not in linked()
    assert states(db) == []


def test_the_compactors_thread_prunes_and_a_failure_waits_for_the_next_time(
    db, counter_store, ingestion_app, monkeypatch, caplog
):
    store_batch(db, counter_store, "b1", [at(0)])  # long past: its state is stale now
    compactor.compact(db, counter_store)

    def away(*args):
        raise RedisConnectionError("Redis away")

    with monkeypatch.context() as patched:
        patched.setattr(compactor, "_holding", away)
        maintenance.prune_visit_states(ingestion_app)
    assert "not pruned" in caplog.text
    assert len(states(db)) == 1
    maintenance.prune_visit_states(ingestion_app)
    assert states(db) == []
