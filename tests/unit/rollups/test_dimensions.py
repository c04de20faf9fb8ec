"""Rollups count views per value of each dimension (source, browser, country, each prop),
within caps, and store them compactly."""

import random
from collections import Counter
from datetime import datetime
from typing import Any

from pyroaring import BitMap

from app.rollups.caps import DEFAULT_CAPS, CappedTally, Caps
from app.rollups.dimensions import OTHER_PROPS, event_values
from app.rollups.tally import Tally, TypeTally, quarter_documents
from tools.factories import make_message


def counted(event_type="page_view", **dims):
    """A tally of one event type: one event per view of each dimension's values."""
    events = sum(sum(values.values()) for values in dims.values())
    return Tally({event_type: TypeTally(events, BitMap(), dims={d: Counter(v) for d, v in dims.items()})})


def test_an_events_values_are_its_dimensions_and_its_props_as_text():
    event = {
        "source": "Google",
        "country": "DE",
        "device": "",
        "props": {"plan": "pro", "n": 3, "ok": False, "x": None},
    }
    assert sorted(event_values(event)) == [
        ("country", "DE"),
        ("prop:n", "3"),
        ("prop:ok", "false"),
        ("prop:plan", "pro"),
        ("source", "Google"),
    ]


def test_a_tally_of_events_counts_each_dimensions_values_per_type():
    events: list[dict[str, Any]] = [
        {"event_type": "page_view", "browser": "Chrome", "props": {"plan": "pro"}},
        {"event_type": "page_view", "browser": "Chrome"},
        {"event_type": "signup", "browser": "Firefox", "props": {"plan": "pro"}},
    ]
    tally = Tally.of(events)
    assert tally.dimension("browser") == Counter({"Chrome": 2, "Firefox": 1})
    assert tally.selected("signup").dimension("prop:plan") == Counter({"pro": 1})


def test_a_tally_with_dimensions_is_stored_and_read_back_the_same():
    tally = counted(browser={"Chrome": 2, "Safari": 1}, country={"DE": 3})
    tally.add(counted("signup", browser={"Chrome": 1}, **{"prop:plan": {"pro": 1}}))
    tally.types["signup"].other_dims["country"] = 4
    assert Tally.unpack(tally.pack()) == tally


def test_a_delta_document_carries_the_dimensions_to_the_compactor():
    message = make_message() | {"source": "Google", "props": {"plan": "pro"}}
    event = {**message, "timestamp": datetime.fromisoformat(message["timestamp"])}
    ((_, types),) = quarter_documents([event]).items()
    assert types[0]["dims"] == [["prop:plan", "pro", 1], ["source", "Google", 1]]
    assert Tally.from_document(types, {"user-xyz-789": 1}).dimension("source") == Counter({"Google": 1})


def test_values_beyond_a_dimensions_cap_are_counted_apart_and_the_first_kept_stay_exact():
    rollup = CappedTally(Tally(), Caps(paths=10, event_types=4, dimension_values=2))
    rollup.add(counted(country={"DE": 1, "FR": 1}))
    rollup.add(counted(country={"DE": 2, "US": 5}))
    assert rollup.tally.dimension("country") == Counter({"DE": 3, "FR": 1})
    assert rollup.tally.other_of("country") == 5


def test_prop_keys_beyond_their_cap_are_counted_together_apart():
    rollup = CappedTally(Tally(), Caps(paths=10, event_types=4, prop_keys=1))
    rollup.add(counted(**{"prop:a": {"1": 1}, "prop:b": {"2": 2}}))
    rollup.add(counted(**{"prop:c": {"3": 3}, "prop:a": {"4": 1}}))
    tally = rollup.tally
    assert tally.dimension("prop:a") == Counter({"1": 1, "4": 1})
    assert (tally.dimension("prop:b"), tally.dimension("prop:c")) == (Counter(), Counter())
    assert tally.types["page_view"].other_dims == Counter({OTHER_PROPS: 5})
    assert tally.other_of("prop:b") == 5


def test_a_capped_rollup_reopened_keeps_the_values_it_kept():
    caps = Caps(paths=10, event_types=4, dimension_values=1)
    rollup = CappedTally(Tally(), caps)
    rollup.add(counted(browser={"Chrome": 1}))
    reopened = CappedTally(Tally.unpack(rollup.tally.pack()), caps)
    reopened.add(counted(browser={"Safari": 1, "Chrome": 1}))
    assert (reopened.tally.dimension("browser"), reopened.tally.other_of("browser")) == (
        Counter({"Chrome": 2}),
        1,
    )


def test_long_distinct_referrers_and_props_keep_a_rollup_far_below_the_document_limit():
    chance = random.Random(28)
    rollup = CappedTally(Tally(), DEFAULT_CAPS)
    for _ in range(20):
        dims = {"referrer": {"https://x/" + chance.randbytes(1000).hex(): 1 for _ in range(100)}}
        dims |= {f"prop:{chance.randbytes(8).hex()}": {chance.randbytes(900).hex(): 1} for _ in range(10)}
        rollup.add(counted(**dims))
    assert len(rollup.tally.pack()) < 3 * 1024 * 1024
