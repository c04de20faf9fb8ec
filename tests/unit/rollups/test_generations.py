"""No cached answer outlives a rollup it read: the cache key holds the site's generation,
which moves before each slice of rollups is written and after it, and, when the writer died
in between, when the next holder takes its shard. On mongomock and an in-memory Redis."""

import contextlib
import threading
from datetime import date

from app.rollups import compactor
from app.store import rollups as rollup_store
from tasks.persist import store_batch
from tools.factories import make_message

SITE = "site-abc-123"
URL = f"/stats?site_id={SITE}&date={date(2025, 11, 15).isoformat()}"
LOCK_KEY = compactor.lock_key(compactor.shard_of(SITE))


def views(reporting):
    return reporting.get(URL).get_json()["total_views"]


def one_event_counted_and_cached(db, counter_store, reporting):
    store_batch(db, counter_store, "b0", [make_message()])
    compactor.compact(db, counter_store)
    assert views(reporting) == 1  # and cached
    store_batch(db, counter_store, "b1", [make_message()])


def test_an_answer_computed_while_a_slice_is_written_is_not_served_after_it(
    db, counter_store, reporting, monkeypatch
):
    """A dashboard asks after the generation moved and before the slice landed: its answer,
    from the rollups before the write, must not be served once the write is done."""
    one_event_counted_and_cached(db, counter_store, reporting)
    save = rollup_store.save_rollups

    def a_reader_asks_then_the_slice_is_written(*args, **kwargs):
        assert views(reporting) == 1  # computed now, from the rollups before the write
        return save(*args, **kwargs)

    monkeypatch.setattr(rollup_store, "save_rollups", a_reader_asks_then_the_slice_is_written)
    compactor.compact(db, counter_store)
    monkeypatch.undo()
    assert views(reporting) == 2


def test_a_holder_that_dies_after_writing_a_slice_leaves_no_stale_answer_once_its_shard_is_taken(
    db, counter_store, reporting, monkeypatch
):
    """The holder moved the generation, a dashboard cached an answer from the rollups before
    the write, the write landed, and the holder died (killed, out of memory) before it moved
    the generation again: nothing did, and the stale answer was served for minutes."""
    one_event_counted_and_cached(db, counter_store, reporting)
    save = rollup_store.save_rollups
    written, dead = threading.Event(), threading.Event()

    def a_reader_asks_then_the_slice_is_written_then_the_holder_dies(*args, **kwargs):
        assert views(reporting) == 1
        save(*args, **kwargs)
        written.set()
        dead.wait()  # never runs again while the test looks: dead, to the rest of the system

    monkeypatch.setattr(
        rollup_store, "save_rollups", a_reader_asks_then_the_slice_is_written_then_the_holder_dies
    )
    holder = threading.Thread(
        target=lambda: _ignoring_errors(compactor.compact, db, counter_store), daemon=True
    )
    holder.start()
    try:
        assert written.wait(timeout=10)
        counter_store.delete(LOCK_KEY)  # its lock expires: it no longer extends it
        monkeypatch.undo()
        compactor.compact(db, counter_store)  # the next holder of the shard
        assert views(reporting) == 2
    finally:
        dead.set()
        holder.join(timeout=10)


def _ignoring_errors(call, *args):
    """Run `call`: a holder brought back after the test has lost its lock, as it should."""
    with contextlib.suppress(Exception):
        call(*args)
