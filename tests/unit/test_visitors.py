"""Visitors without cookies: whom an event counts as, visitor ids and their daily salts."""

from datetime import UTC, date, datetime

import fakeredis
import pytest

from app.visitors import DailySalt, fetch_salt, identity, salt_key, visitor_id
from app.web.client_address import anonymized

SALT = b"s" * 32


def test_an_event_counts_as_its_user_else_its_visitor():
    assert identity({"user_id": "u-1", "visitor_id": "v-1"}) == "u-1"
    assert identity({"user_id": "", "visitor_id": "v-1"}) == "v-1"
    assert identity({"user_id": None, "visitor_id": "v-1"}) == "v-1"
    assert identity({"site_id": "shop"}) is None


def test_a_visitor_id_is_32_hex_digits_the_same_for_the_same_visitor():
    first = visitor_id(SALT, "shop", "203.0.113.9", "Mozilla/5.0 A")
    assert first == visitor_id(SALT, "shop", "203.0.113.9", "Mozilla/5.0 A")
    assert len(first) == 32
    int(first, 16)


def test_a_visitor_id_differs_by_site_address_user_agent_and_salt():
    base = ("shop", "203.0.113.9", "Mozilla/5.0 A")
    ids = {
        visitor_id(SALT, *base),
        visitor_id(SALT, "blog", *base[1:]),
        visitor_id(SALT, base[0], "203.0.113.10", base[2]),
        visitor_id(SALT, *base[:2], "Mozilla/5.0 B"),
        visitor_id(b"t" * 32, *base),
        # The parts are separated: moving a character from one to the next changes the id.
        visitor_id(SALT, "shop2", "03.0.113.9", base[2]),
    }
    assert len(ids) == 6


def test_the_first_process_to_ask_makes_the_day_s_salt_and_every_process_reads_it():
    server = fakeredis.FakeServer()
    one, other = fakeredis.FakeRedis(server=server), fakeredis.FakeRedis(server=server)
    day = date(2026, 12, 7)
    salt = fetch_salt(one, day)
    assert len(salt) == 32
    assert fetch_salt(other, day) == salt
    assert fetch_salt(one, date(2026, 12, 8)) != salt


def test_a_day_s_salt_is_deleted_48_hours_after_the_day_ends():
    client = fakeredis.FakeRedis()
    fetch_salt(client, date(2026, 12, 7))
    expires_at = client.expiretime(salt_key(date(2026, 12, 7)))
    assert datetime.fromtimestamp(expires_at, UTC) == datetime(2026, 12, 10, tzinfo=UTC)


def test_a_process_asks_redis_for_the_salt_once_a_day():
    client = fakeredis.FakeRedis()
    salts = DailySalt()
    morning, evening = datetime(2026, 12, 7, 1, tzinfo=UTC), datetime(2026, 12, 7, 23, tzinfo=UTC)
    today = salts.today(client, morning)
    client.delete(salt_key(date(2026, 12, 7)))
    assert salts.today(client, evening) == today  # remembered, not asked again
    tomorrow = salts.today(client, datetime(2026, 12, 8, 0, 1, tzinfo=UTC))
    assert tomorrow != today
    assert client.get(salt_key(date(2026, 12, 8))) == tomorrow


@pytest.mark.parametrize(
    ("address", "logged"),
    [
        ("203.0.113.77", "203.0.113.0"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::"),
        ("::ffff:203.0.113.77", "203.0.113.0"),
        ("not an address", "-"),
    ],
)
def test_ingestion_s_log_keeps_only_the_visitor_s_network(address, logged):
    assert anonymized(address) == logged


def test_just_after_midnight_a_visitor_is_also_named_by_the_previous_day_s_id():
    """So that a visit across midnight can go on: the sessions find it by yesterday's id."""
    client, salts = fakeredis.FakeRedis(), DailySalt()
    visitor = ("shop", "203.0.113.9", "Mozilla/5.0 A")
    before_midnight, _ = salts.visitor_ids(client, *visitor, now=datetime(2026, 12, 7, 23, 50, tzinfo=UTC))
    after, previous = salts.visitor_ids(client, *visitor, now=datetime(2026, 12, 8, 0, 10, tzinfo=UTC))
    assert previous == before_midnight != after
    later = salts.visitor_ids(client, *visitor, now=datetime(2026, 12, 8, 0, 30, tzinfo=UTC))
    assert later == (after, None)


def test_without_the_previous_day_s_salt_there_is_no_previous_id():
    first_day = DailySalt().visitor_ids(
        fakeredis.FakeRedis(), "shop", "a", "b", datetime(2026, 12, 8, 0, 1, tzinfo=UTC)
    )
    assert first_day[1] is None
