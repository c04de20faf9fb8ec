import hashlib

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


def test_a_revoked_key_works_until_its_cache_entry_expires(db, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: now[0])
    cache = keys.KeyCache()
    key = keys.create_key(db, None)
    assert cache.verify(db, key.secret, ttl=30) is not None
    sites.revoke_key(db, key.key_id)
    now[0] += 29
    assert cache.verify(db, key.secret, ttl=30) is not None
    now[0] += 2
    assert cache.verify(db, key.secret, ttl=30) is None


def test_an_unknown_key_is_not_remembered_so_a_new_key_works_at_once(db):
    cache = keys.KeyCache()
    assert cache.verify(db, "ak_not-yet", ttl=30) is None
    sites.save_key(db, "k1", "a.test", keys.hash_key("ak_not-yet"))
    assert cache.verify(db, "ak_not-yet", ttl=30) is not None
