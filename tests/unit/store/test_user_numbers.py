"""Users numbered in MongoDB: exactly one number per (site, user), one user per number, keys
of bounded length, whatever assigners run at once."""

import threading

import mongomock
import mongomock.collection
import pytest

from app.rollups import user_ids
from app.store import user_numbers


def assign_concurrently(db, site_id, users_of_each, monkeypatch=None):
    """Each thread numbers its users at once; the answers of all threads."""
    answers: list[dict[str, int]] = [{} for _ in users_of_each]
    start = threading.Barrier(len(users_of_each))

    errors: list[Exception] = []

    def work(index):
        start.wait()
        try:
            answers[index] = user_ids.ids_by_site(db, {site_id: users_of_each[index]})[site_id]
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(users_of_each))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return answers


def assert_one_number_per_user_and_one_user_per_number(answers, stored):
    merged: dict[str, int] = {}
    for answer in answers:
        for user, number in answer.items():
            assert merged.setdefault(user, number) == number  # every caller was told the same
    assert len(set(merged.values())) == len(merged)
    assert stored == merged


def stored_numbers(db, site_id, users):
    keys = {user_numbers.user_key(site_id, user): user for user in users}
    return {keys[key]: number for key, number in user_numbers.numbers(db, keys).items()}


@pytest.fixture
def atomic_commands(monkeypatch):
    """mongomock applies a command in Python steps that threads interleave (two inserts of one
    `_id` can both pass its check): one lock per command makes each atomic, as on a server."""
    lock = threading.RLock()
    for name in ("insert_many", "find_one_and_update"):
        command = getattr(mongomock.collection.Collection, name)

        def atomic(*args, command=command, **kwargs):
            with lock:
                return command(*args, **kwargs)

        monkeypatch.setattr(mongomock.collection.Collection, name, atomic)


def test_concurrent_assigners_give_each_user_one_number_and_each_number_one_user(db, atomic_commands):
    users_of_each = [[f"user-{n}" for n in range(thread, thread + 300)] for thread in range(0, 600, 75)]
    answers = assign_concurrently(db, "site-a", users_of_each)
    every_user = {user for users in users_of_each for user in users}
    assert_one_number_per_user_and_one_user_per_number(answers, stored_numbers(db, "site-a", every_user))


def test_a_counter_that_hands_out_a_block_twice_still_gives_distinct_numbers(db, monkeypatch):
    """FerretDB's `$inc` reads and writes the counter back unlocked: two assigners at once can
    both be given numbers 1..n. The unique (site, number) index refuses the second user of a
    number, and its assigner reserves further on."""
    reserve = user_numbers.reserve
    given = []

    def forgetful(db, site_id, count):
        first = reserve(db, site_id, count)
        given.append(first)
        return 1 if len(given) <= 2 else first  # the first two callers get the same block

    monkeypatch.setattr(user_numbers, "reserve", forgetful)
    first = user_ids.ids_by_site(db, {"site-a": ["ann", "bob"]})["site-a"]
    second = user_ids.ids_by_site(db, {"site-a": ["cy", "dee", "bob"]})["site-a"]
    assert len(given) == 3  # the second caller's block was refused once
    assert second["bob"] == first["bob"]
    assert len({*first.values(), *second.values()}) == 4
    assert_one_number_per_user_and_one_user_per_number(
        [first, second], stored_numbers(db, "site-a", ["ann", "bob", "cy", "dee"])
    )


def test_long_user_ids_are_keyed_by_their_hash_and_still_numbered_apart(db):
    long_ids = ["x" * 255 + "a", "x" * 255 + "b", "y" * 64]
    numbers = user_ids.ids_by_site(db, {"site-a": long_ids})["site-a"]
    assert len(set(numbers.values())) == 3
    keys = db[user_numbers.USER_NUMBERS].distinct("_id")
    assert max(len(key) for key in keys) == len("site-a\x1f") + 64
    assert user_ids.ids_by_site(db, {"site-a": long_ids})["site-a"] == numbers
    # An id kept as it is never equals a hash: those have 64 characters, kept ones fewer.
    assert len(user_numbers.user_key("s", "z" * 63)) == len("s\x1f") + 63


def test_a_process_looks_up_only_the_users_it_has_not_met(db, monkeypatch):
    """On FerretDB a lookup of many ids is one lookup each: a compactor numbering a busy
    site's returning users again every round took ten times as long as with Redis."""
    monkeypatch.setattr(user_ids, "REMEMBERED", 3)
    looked_up = []
    numbers = user_numbers.numbers

    def counted(database, keys):
        keys = list(keys)
        looked_up.append(len(keys))
        return numbers(database, keys)

    monkeypatch.setattr(user_numbers, "numbers", counted)
    first = user_ids.ids_by_site(db, {"site-a": ["ann", "bob"]})["site-a"]
    assert user_ids.ids_by_site(db, {"site-a": ["bob", "ann"]})["site-a"] == first
    assert looked_up == [2]
    # Full: forgotten at once, and still answered right.
    assert user_ids.ids_by_site(db, {"site-a": ["ann", "cy", "dee"]})["site-a"] == {
        "ann": first["ann"],
        "cy": 3,
        "dee": 4,
    }
    assert user_ids.ids_by_site(db, {"site-a": ["ann"]})["site-a"] == {"ann": first["ann"]}
    assert looked_up == [2, 2, 1]
