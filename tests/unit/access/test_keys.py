import hashlib
from unittest import mock

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from app.access import keys
from app.store import sites


def test_a_new_key_is_random_and_stored_only_as_its_sha256(db):
    first, second = keys.create_key(db, "a.test"), keys.create_key(db, "a.test")
    assert first.secret != second.secret
    assert first.key_id != second.key_id
    assert first.secret.startswith(keys.KEY_PREFIX)
    assert len(first.secret) > 40
    stored = list(db[sites.READ_KEYS].find())
    assert first.secret not in str(stored)
    assert {doc["_id"] for doc in stored} == {
        hashlib.sha256(key.secret.encode()).hexdigest() for key in (first, second)
    }


def test_a_key_is_verified_by_its_secret(db):
    key = keys.create_key(db, "a.test")
    found = keys.KeyCache().verify(db, key.secret, ttl=30)
    assert found is not None
    assert (found.key_id, found.site_id) == (key.key_id, "a.test")
    assert keys.KeyCache().verify(db, key.secret + "x", ttl=30) is None


def verified_then_revoked(db, monkeypatch):
    """An operator key a cache verified, then revoked; the clock, which the test moves on."""
    now = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: now[0])
    cache = keys.KeyCache()
    key = keys.create_key(db, None)
    assert cache.verify(db, key.secret, ttl=30) is not None
    sites.revoke_key(db, key.key_id)
    return cache, key, now


def test_a_revoked_key_works_until_its_cache_entry_expires(db, monkeypatch):
    cache, key, now = verified_then_revoked(db, monkeypatch)
    now[0] += 29
    assert cache.verify(db, key.secret, ttl=30) is not None
    now[0] += 2
    assert cache.verify(db, key.secret, ttl=30) is None


def lookups(monkeypatch):
    """The hashes looked up in MongoDB, as they are."""
    looked_up = []
    find = sites.key_by_hash

    def counting(db, key_hash):
        looked_up.append(key_hash)
        return find(db, key_hash)

    monkeypatch.setattr(sites, "key_by_hash", counting)
    return looked_up


def test_an_unknown_token_is_looked_up_once_until_its_cache_entry_expires(db, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: now[0])
    looked_up = lookups(monkeypatch)
    cache = keys.KeyCache()
    assert [cache.verify(db, "ak_wrong", ttl=30) for _ in range(3)] == [None] * 3
    assert len(looked_up) == 1
    now[0] += 31
    assert cache.verify(db, "ak_wrong", ttl=30) is None
    assert len(looked_up) == 2


def test_a_new_key_works_at_once_however_many_unknown_tokens_came_before(db):
    cache = keys.KeyCache()
    for n in range(keys.MAX_CACHED_KEYS + 5):
        assert cache.verify(db, f"ak_made-up-{n}", ttl=30) is None
    key = keys.create_key(db, "a.test")
    assert cache.verify(db, key.secret, ttl=30) is not None
    assert cache.known(key.secret)
    assert not cache.known("ak_made-up-1")


def test_a_verified_key_is_known_without_mongodb_until_its_entry_expires(db, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: now[0])
    cache = keys.KeyCache()
    key = keys.create_key(db, "a.test")
    assert not cache.known(key.secret)  # not verified in this process yet
    cache.verify(db, key.secret, ttl=30)
    looked_up = lookups(monkeypatch)
    assert cache.known(key.secret)
    now[0] += 31
    assert not cache.known(key.secret)
    assert looked_up == []


@pytest.mark.parametrize("header", ["Bearer K", "bearer  K", "BEARER K", " Bearer\tK ", "bearer K  "])
def test_a_bearer_token_is_read_whatever_the_schemes_case_and_the_spaces(header):
    assert keys.bearer_token(header) == "K"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Basic Sw==", "K"])
def test_no_bearer_token_in_other_headers(header):
    assert keys.bearer_token(header) is None


def test_a_key_revoked_long_before_an_outage_is_not_trusted_through_it(db, monkeypatch):
    cache, key, now = verified_then_revoked(db, monkeypatch)
    now[0] += keys.OUTAGE_TRUST_SECONDS + 1
    away = ServerSelectionTimeoutError("mongo-1:27017: [Errno 111] Connection refused")
    with (
        mock.patch("app.store.sites.key_by_hash", side_effect=away),
        pytest.raises(ServerSelectionTimeoutError),
    ):
        cache.verify(db, key.secret, ttl=30)
