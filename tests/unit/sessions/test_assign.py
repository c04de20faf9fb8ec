"""Visits assigned in the worker: one Redis script over each visitor's last-seen time."""

from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from app.sessions import locks
from app.sessions.assign import assign_visits
from tasks import persist
from tools.factories import make_message

START = datetime(2025, 11, 15, 10, 0, tzinfo=UTC)


@pytest.fixture
def client():
    return fakeredis.FakeRedis()


def at(minutes: float, user: str = "alice", **fields):
    moment = START + timedelta(minutes=minutes)
    return make_message(user_id=user, timestamp=moment.isoformat(), **fields)


def visits(client, *batches):
    """The visit ids the batches' events get, delivered in this order, flattened."""
    found = []
    for batch in batches:
        held = locks.Held()
        found += [message.get("visit_id") for message in assign_visits(client, batch, held)]
        locks.give_back(client, held)
    return found


def test_events_less_than_30_minutes_apart_are_one_visit_and_a_longer_pause_starts_another(client):
    first, second, third, fourth = visits(client, [at(0), at(29)], [at(58)], [at(88.5)])
    assert first == second == third
    assert fourth != third
    assert fourth is not None


def test_each_visitor_has_visits_of_their_own(client):
    alice, bob = visits(client, [at(0, "alice"), at(1, "bob")])
    assert alice != bob


def test_the_visitor_id_is_the_identity_when_there_is_no_user_id(client):
    anonymous = make_message(user_id=None, visitor_id="a" * 32)
    [message] = assign_visits(client, [{**anonymous, "visitor_id": "a" * 32}], locks.Held())
    assert message["visit_id"]


def test_an_event_without_identity_gets_no_visit(client):
    [message] = assign_visits(client, [make_message(user_id=None)], locks.Held())
    assert "visit_id" not in message


def test_an_event_arriving_late_joins_the_visit_it_is_within_30_minutes_of(client):
    later, earlier = visits(client, [at(20)], [at(0)])
    assert later == earlier


def test_a_batch_is_assigned_in_time_order_whatever_its_order(client):
    ids = visits(client, [at(50), at(0), at(25)])
    assert len(set(ids)) == 1


def test_events_arriving_out_of_order_across_a_gap_may_split_a_visit_but_never_join_strangers(client):
    # 0 and 50 are 50 minutes apart: two visits until 25 arrives, which bridges them. It
    # joins the visit it finds (50's), so 0 stays a visit of its own: split, never wrong.
    zero, fifty, twenty_five = visits(client, [at(0)], [at(50)], [at(25)])
    assert zero != fifty
    assert twenty_five == fifty
    # An event far older than the visit the state follows gets a visit of its own, and
    # leaves that state alone.
    old, after = visits(client, [at(-120)], [at(60)])
    assert old not in (zero, fifty)
    assert after == fifty


def test_a_batch_delivered_again_gets_the_same_visits(client):
    batch = [at(0), at(10), at(100)]
    assert visits(client, batch) == visits(client, batch)


def test_a_batch_waits_for_the_locks_of_its_visits_another_batch_holds(client, monkeypatch):
    monkeypatch.setattr(locks, "WAIT_SECONDS", 0.05)
    first = locks.Held()
    [message] = assign_visits(client, [at(0)], first)
    assert first.visits == {message["visit_id"]}
    with pytest.raises(locks.VisitLockTimeoutError):
        assign_visits(client, [at(1)], locks.Held())
    # Nothing was written by the refused attempt: once the locks are free, the same visit.
    locks.give_back(client, first)
    [again] = assign_visits(client, [at(1)], locks.Held())
    assert again["visit_id"] == message["visit_id"]


def test_the_visits_of_a_failed_batch_are_freed(db, client, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("MongoDB said no")

    monkeypatch.setattr(persist.event_store, "insert_events", refuse)
    with pytest.raises(RuntimeError):
        persist.store_batch(db, client, "batch-1", [at(0)], visits=True)
    assert not client.keys(locks.LOCK_KEY_SPACE + "*")


def test_a_visit_goes_on_across_midnight_under_the_new_days_visitor_id(client):
    def anonymous(clock, **ids):
        return {**make_message(user_id=None, timestamp=clock), **ids}

    evening, after_midnight, stranger = visits(
        client,
        [anonymous("2025-11-15T23:50:00Z", visitor_id="day-1")],
        [anonymous("2025-11-16T00:10:00Z", visitor_id="day-2", previous_visitor_id="day-1")],
        # A previous day's id only lets a visit go on: it names no one beyond it.
        [anonymous("2025-11-16T00:29:00Z", visitor_id="day-2b", previous_visitor_id="day-0")],
    )
    assert after_midnight == evening
    assert stranger != evening
