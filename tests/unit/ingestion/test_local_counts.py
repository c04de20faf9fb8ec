"""Windows counted in process: what a sync sends, and what it never does."""

import sys
import threading
import time
from collections.abc import Callable

import fakeredis
import pytest

from app.ingestion import local_counts
from app.ingestion.local_counts import LocalCounts


@pytest.fixture
def no_background_sync(monkeypatch):
    monkeypatch.setattr(local_counts, "SYNC_SECONDS", 3600.0)


@pytest.fixture
def make_counts(no_background_sync):
    """LocalCounts whose sync threads are stopped after the test."""
    made = []

    def make(script, lease, on_failure=None):
        counts = LocalCounts(script, lease, on_failure or (lambda error: None))
        made.append(counts)
        return counts

    yield make
    for counts in made:
        counts.stop()


@pytest.fixture
def store():
    return fakeredis.FakeRedis()


def scripts(store):
    return store.register_script(local_counts.SYNC_WINDOWS), store.register_script(local_counts.LEASE)


class RecordingScript:
    """Records each call's keys and answers as the sync script would, after `before_reply`."""

    def __init__(self, store):
        self.script = store.register_script(local_counts.SYNC_WINDOWS)
        self.calls = []
        self.before_reply: Callable[[], object] = lambda: None

    def __call__(self, keys, args):
        self.calls.append(list(keys))
        totals = self.script(keys=keys, args=args)
        self.before_reply()
        return totals


def test_a_window_without_new_hits_is_not_sent_so_its_key_is_not_recreated(store, make_counts):
    counts = make_counts(*scripts(store))
    counts.hit("k", 200, 60, 1)
    counts.sync()
    store.delete("k")  # it ended in Redis
    counts.sync()
    assert not store.exists("k")


def test_a_sync_sends_only_the_windows_with_new_hits(store, make_counts):
    script = RecordingScript(store)
    counts = make_counts(script, store.register_script(local_counts.LEASE))
    counts.hit("a", 200, 60, 1)
    counts.hit("b", 200, 60, 1)
    counts.sync()
    counts.hit("b", 200, 60, 1)
    counts.sync()
    assert script.calls == [["a", "b"], ["b"]]
    assert (int(store.get("a")), int(store.get("b"))) == (1, 2)


def test_a_windows_end_here_is_dated_from_the_send_never_after_redis(store, make_counts):
    script = RecordingScript(store)
    script.before_reply = lambda: time.sleep(0.2)  # a slow reply
    counts = make_counts(script, store.register_script(local_counts.LEASE))
    store.set("k", 5, px=1000)  # another process began the window
    counts.hit("k", 200, 60, 1)
    before = time.time()
    counts.sync()
    assert counts.hit("k", 7, 60, 1) is None  # the total 6 is learned: the 7th passes,
    ends = counts.hit("k", 7, 60, 1)  # the 8th is over
    assert ends is not None
    assert ends <= before + 1.05  # not dated from the reply, 0.2 s later


def test_large_syncs_are_sent_in_chunks(store, make_counts, monkeypatch):
    monkeypatch.setattr(local_counts, "SYNC_CHUNK", 2)
    script = RecordingScript(store)
    counts = make_counts(script, store.register_script(local_counts.LEASE))
    for key in "abcde":
        counts.hit(key, 200, 60, 1)
    counts.sync()
    assert [len(keys) for keys in script.calls] == [2, 2, 1]
    assert [int(store.get(key)) for key in "abcde"] == [1] * 5


def test_a_process_holds_at_most_max_windows(store, make_counts, monkeypatch):
    monkeypatch.setattr(local_counts, "MAX_WINDOWS", 2)
    counts = make_counts(*scripts(store))
    assert counts.can_hold(["a", "b"])
    counts.hit("a", 200, 60, 1)
    counts.hit("b", 200, 60, 1)
    assert counts.can_hold(["a", "b"])
    assert not counts.can_hold(["c"])
    counts._counts["b"].ends = time.time()  # it ended: it makes room
    assert counts.can_hold(["c"])


def test_a_reply_does_not_overwrite_the_window_that_followed_the_one_sent(store, make_counts):
    script = RecordingScript(store)
    counts = make_counts(script, store.register_script(local_counts.LEASE))
    store.set("k", 100)
    counts.hit("k", 200, 60, 1)
    # The window ends here while the sync is on its way; a new one starts with a hit.
    script.before_reply = lambda: (counts._counts.pop("k"), counts.hit("k", 200, 60, 1))
    counts.sync()
    assert counts._counts["k"].total == 0  # the new window's, not the old 101


def test_the_sync_thread_survives_a_sync_that_raises(store, monkeypatch, no_background_sync):
    monkeypatch.setattr(local_counts, "SYNC_SECONDS", 0.01)
    synced = threading.Event()
    calls = []

    def script(keys, args):
        calls.append(keys)
        if len(calls) == 1:
            return []  # a malformed reply: the sync raises
        synced.set()
        return [[1, 60_000]] * len(keys)

    counts = LocalCounts(script, script, lambda error: None)
    try:
        counts.hit("a", 200, 60, 1)
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        counts.hit("a", 200, 60, 1)
        assert synced.wait(5)
    finally:
        counts.stop()


def test_a_dead_sync_thread_is_restarted(store, make_counts):
    counts = make_counts(*scripts(store))
    counts.hit("a", 200, 60, 1)
    counts.stop()  # as if it died
    counts.hit("a", 200, 60, 1)
    assert counts._thread is not None
    assert counts._thread.is_alive()


def admitted(counts, hits, limit, cost):
    """How many of `hits` (counters, in turn) each counter admits, syncing now and then."""
    total = 0
    for n, counter in enumerate(hits):
        total += counts[counter].hit("k", limit, 60, cost) is None
        if n % 7 == 6:
            counts[counter].sync()
    return total


@pytest.mark.parametrize(("cost", "bound"), [(1, 1000 + 2 * 50), (500, 1000)])
def test_two_processes_overshoot_a_window_by_at_most_a_lease_each(store, make_counts, cost, bound):
    """Flooded far past the limit, each process admits on its own only a lease (5% of the
    limit); a batch larger than a lease is counted in Redis, exactly."""
    counts = [make_counts(*scripts(store)), make_counts(*scripts(store))]
    total = admitted(counts, [0, 1] * 3000, 1000, cost)
    assert 1000 <= total * cost <= bound
    counts[0].sync()
    counts[1].sync()
    assert int(store.get("k")) == total * cost


def test_a_request_over_the_limit_is_not_counted_in_it(store, make_counts):
    counts = make_counts(*scripts(store))
    assert counts.hit("k", 1000, 60, 999) is None
    assert counts.hit("k", 1000, 60, 500) is not None
    assert counts.hit("k", 1000, 60, 1) is None


def test_concurrent_first_counts_start_one_sync_thread_and_lose_no_hit(store, make_counts):
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can
    try:
        for _ in range(30):
            before = sum(thread.name == "rate-limit-sync" for thread in threading.enumerate())
            counts = make_counts(*scripts(store))
            barrier = threading.Barrier(8)

            def count(counts=counts, barrier=barrier):
                barrier.wait()
                counts.hit("k", 10**9, 60, 1)

            threads = [threading.Thread(target=count) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sum(thread.name == "rate-limit-sync" for thread in threading.enumerate()) - before == 1
            assert counts._counts["k"].unsent == 8
    finally:
        sys.setswitchinterval(interval)
