"""A rollup's size is bounded whatever the input: paths and event types beyond their caps
are counted apart, and the ones kept stay exact."""

import random
import zlib
from collections import Counter
from datetime import date
from zoneinfo import ZoneInfo

import bson
import orjson
from pyroaring import BitMap

from app.rollups import compactor
from app.rollups.caps import DEFAULT_CAPS, CappedTally, Caps
from app.rollups.tally import COMPRESSION_LEVEL, Tally, TypeTally
from app.store import rollups as rollup_store
from reporting.periods import Period
from reporting.queries import summary, summary_from_pipeline
from tasks.persist import store_batch
from tools.factories import make_message

SMALL = Caps(paths=3, event_types=2)
DAY = Period("site-abc-123", date(2025, 11, 15), date(2025, 11, 15), ZoneInfo("UTC"))


def views(event_type="page_view", users=(), **paths):
    """A tally of one event type: one event per view of each path."""
    counts = Counter({f"/{name}": n for name, n in paths.items()})
    return Tally({event_type: TypeTally(sum(counts.values()), BitMap(users), counts)})


def test_paths_beyond_the_cap_are_counted_apart_and_the_first_kept_stay_exact():
    rollup = CappedTally(Tally(), SMALL)
    rollup.add(views(a=2, b=1))
    rollup.add(views(c=1, d=5))  # /d arrives after the cap is reached
    rollup.add(views(a=3, d=1, e=1))  # a kept path stays kept
    tally = rollup.tally
    assert tally.paths == Counter({"/a": 5, "/b": 1, "/c": 1})
    assert tally.other_paths == 7
    assert tally.events == 14


def test_a_real_path_named_other_does_not_mix_with_the_paths_beyond_the_cap():
    rollup = CappedTally(Tally(), Caps(paths=1, event_types=2))
    rollup.add(Tally({"page_view": TypeTally(3, BitMap(), Counter({"(other)": 2, "/x": 1}))}))
    assert (rollup.tally.paths, rollup.tally.other_paths) == (Counter({"(other)": 2}), 1)


def test_long_paths_also_meet_a_cap_on_their_bytes():
    """A path of 2,048 four-byte characters takes 8 KiB: the cap bounds bytes, not only paths."""
    caps = Caps(paths=4, event_types=2)
    wide = {f"/{n}" + "😀" * 2046: 1 for n in range(4)}
    rollup = CappedTally(Tally(), caps)
    rollup.add(Tally({"page_view": TypeTally(4, BitMap(), Counter(wide))}))
    kept = rollup.tally.paths
    assert sum(len(orjson.dumps(path)) for path in kept) <= caps.path_bytes
    assert (len(kept), rollup.tally.other_paths) == (1, 3)


def test_paths_of_characters_json_escapes_meet_the_cap_on_their_stored_bytes():
    caps = Caps(paths=3, event_types=2)
    quoted = {f"/{n}" + '"' * 2046: 1 for n in range(4)}  # each `"` stored as 2 bytes
    rollup = CappedTally(Tally(), caps)
    rollup.add(Tally({"page_view": TypeTally(4, BitMap(), Counter(quoted))}))
    assert (len(rollup.tally.paths), rollup.tally.other_paths) == (1, 3)


def test_event_types_beyond_the_cap_count_in_the_totals_and_their_paths_in_top_paths():
    rollup = CappedTally(Tally(), SMALL)
    rollup.add(views("page_view", users=[1], a=1))
    rollup.add(views("click", users=[2], b=1))
    rollup.add(views("(other)", users=[3], a=2))  # a third type: beyond the cap, whatever its name
    rollup.add(views("signup", users=[1, 4], c=1))
    tally = rollup.tally
    assert sorted(tally.types) == ["click", "page_view"]
    assert tally.other_types.events == 3
    assert (tally.events, tally.unique_users) == (5, 4)
    assert tally.paths == Counter({"/a": 3, "/b": 1, "/c": 1})
    assert tally.selected("signup").events == 0


def test_a_capped_tally_is_stored_and_added_up_with_what_it_set_apart():
    rollup = CappedTally(Tally(), SMALL)
    for tally in (views(a=2, b=1, c=1, d=4), views("click", b=1), views("signup", users=[9], e=1)):
        rollup.add(tally)
    tally = rollup.tally
    assert Tally.unpack(tally.pack()) == tally
    total = Tally.unpack(tally.pack())
    total.add_packed(tally.pack())
    assert (total.events, total.other_paths, total.other_types.events) == (20, 10, 2)


def test_a_rollup_stored_before_the_caps_still_reads():
    earlier_form = {
        "types": [
            {
                "event_type": "page_view",
                "events": 3,
                "users": BitMap([1, 2]).serialize(),
                "paths": orjson.dumps({"/a": 2, "/b": 1}),
            }
        ]
    }
    tally = Tally.unpack(zlib.compress(bson.encode(earlier_form), COMPRESSION_LEVEL))
    assert tally == views(users=[1, 2], a=2, b=1)


def test_ten_thousand_long_distinct_paths_in_one_week_stay_far_below_the_document_limit():
    """The issue's case: ~10,000 distinct 2,000-character paths in one site-week made the
    rollup larger than MongoDB's 16 MiB limit for a document."""
    chance = random.Random(17)
    rollup = CappedTally(Tally(), DEFAULT_CAPS)
    for _ in range(20):  # batches of 500 events, as POST /events sends them
        # Random characters: zlib cannot shrink them as it shrinks real paths.
        paths = Counter({"/" + chance.randbytes(1000).hex(): 1 for _ in range(500)})
        rollup.add(Tally({"page_view": TypeTally(500, BitMap(), paths)}))
    assert rollup.tally.events == 10_000
    assert len(rollup.tally.pack()) < 3 * 1024 * 1024  # uncapped: 11 MiB after compression


def test_the_compactor_keeps_each_rollup_within_the_caps(db, counter_store):
    for batch in range(3):
        messages = [make_message(path=f"/b{batch}-{n}", user_id=f"u{n}") for n in range(2)]
        store_batch(db, counter_store, f"batch-{batch}", messages)
    compactor.compact(db, counter_store, SMALL)
    for document in db[rollup_store.ROLLUPS].find():
        assert len(Tally.unpack(document["tally"]).paths) == 3
    answer = summary(db, DAY, 10)
    exact = summary_from_pipeline(db, DAY, 10)
    assert (answer.total_views, answer.unique_users) == (exact.total_views, exact.unique_users) == (6, 2)
    assert answer.other_paths == 3
    assert {row.path: row.views for row in answer.top_paths} == {"/b0-0": 1, "/b0-1": 1, "/b1-0": 1}


def test_a_rebuild_keeps_the_caps_too(db, counter_store):
    messages = [make_message(path=f"/p{n}") for n in range(5)]
    store_batch(db, counter_store, "batch-1", messages)
    compactor.compact(db, counter_store, SMALL)
    compactor.rebuild(db, counter_store, "site-abc-123", DAY.first_day, DAY.last_day, SMALL)
    answer = summary(db, DAY, 10)
    assert (answer.total_views, len(answer.top_paths), answer.other_paths) == (5, 3, 2)
