"""What a rollup holds: user bitmaps, the stored form, and the users' integer ids."""

from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pyroaring import BitMap

from app import user_ids
from app.rollups import Tally, TypeTally

ids = st.sets(st.integers(min_value=1, max_value=1_000_000), max_size=200)


@given(ids, ids, st.dictionaries(st.text(max_size=20), st.integers(1, 1000), max_size=20))
def test_a_packed_tally_unpacks_to_itself_and_adds_up(first, second, paths):
    tally = Tally(
        {
            "page_view": TypeTally(7, BitMap(first), Counter(paths)),
            "click": TypeTally(1, BitMap(second)),
        }
    )
    assert Tally.unpack(tally.pack()) == tally
    total = Tally.unpack(tally.pack())
    total.add_packed(tally.pack())
    assert total.unique_users == len(first | second)
    assert total.events == 16
    assert total.paths == Counter({path: 2 * views for path, views in paths.items()})
    assert Tally.from_document(tally.to_document()) == tally


def test_a_user_keeps_one_id_per_site_and_new_users_get_the_next(counter_store):
    first = user_ids.ids_by_site(counter_store, {"site-a": ["ann", "bob"]})["site-a"]
    assert sorted(first.values()) == [1, 2]
    again = user_ids.ids_by_site(
        counter_store, {"site-a": ["bob", "cy", "ann"], "site-b": ["cy"], "site-c": []}
    )
    assert again == {"site-a": {**first, "cy": 3}, "site-b": {"cy": 1}}
    assert user_ids.ids_by_site(counter_store, {"site-b": ["dee", "cy"]}) == {"site-b": {"cy": 1, "dee": 2}}


def test_numbering_replaces_user_ids_and_leaves_events_without_users_alone(counter_store):
    events: list[dict[str, Any]] = [
        {"site_id": "s", "user_id": "ann"},
        {"site_id": "s", "user_id": None},
        {"site_id": "s", "user_id": "ann"},
    ]
    numbered = user_ids.numbered(counter_store, events)
    assert [event["user_id"] for event in numbered] == [1, None, 1]
    assert [event["user_id"] for event in user_ids.numbered_locally(events)] == [1, None, 1]
