"""Conditions and sorts on a string `_id` are served from an index by the local FerretDB
(tools/ferretdb/id-pushdown.patch), and answer as MongoDB's rules say, whatever the ids hold."""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId, encode
from pymongo.collection import Collection

from app.store import is_ferretdb
from tools.processes import wait_until

OBJECT_ID = ObjectId("65a1b2c3d4e5f60718293a4b")
STRING_IDS = [
    "",
    "a",
    "a\x1f",
    "a\x1fb",
    "a b",
    "ab",
    "site\x1f2025-01-01T00:00:00.000Z\x1fe1",
    "site\x1f2025-01-01T23:59:59.999Z\x1fe2",
    "site\x1f2025-01-02T00:00:00.000Z\x1fe3",
    "site2\x1f2025-01-01T12:00:00.000Z\x1fe1",
    "it's",
    'say "hi"',
    "back\\slash",
    "Zürich",
    "Zz",
    "é",
    "日本",
    "😀",
    "{",
    '{"$o":"65a1b2c3d4e5f60718293a4b"}',  # how SQLite spells OBJECT_ID's JSON
]
OTHER_IDS: list[Any] = [5, 2.5, -1, True, None, OBJECT_ID, datetime(2025, 1, 1, tzinfo=UTC), {"k": "a"}]
BOUNDS = [
    *("", "a", "a\x1f", "Z", "é", "😀", "{"),
    *("site\x1f2025-01-01", "site\x1f2025-01-02", "site\x1f\U0010ffff"),
]


def utf8(value: str) -> bytes:
    """BSON orders strings by their UTF-8 bytes."""
    return value.encode()


def as_bson(id_: Any) -> bytes:
    """An id as the server compares it (a datetime whatever its tzinfo object)."""
    return encode({"_id": id_})


COMPARISONS = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def range_filters() -> Iterator[dict[str, str]]:
    """`_id` ranges of every form over BOUNDS."""
    for lo in BOUNDS:
        yield {"$gt": lo}
        yield {"$lte": lo}
        for hi in BOUNDS:
            yield {"$gte": lo, "$lt": hi}


def in_range(value: str, range_: dict[str, str]) -> bool:
    """Whether a string is within a range, by MongoDB's rules."""
    return all(COMPARISONS[op](utf8(value), utf8(bound)) for op, bound in range_.items())


@pytest.fixture(scope="module")
def ids(db) -> Iterator[Collection[dict[str, Any]]]:
    """A collection of string and other ids, each document numbered."""
    collection = db[f"ids_{uuid.uuid4().hex[:8]}"]
    every_id = STRING_IDS + OTHER_IDS
    collection.insert_many([{"_id": id_, "n": n} for n, id_ in enumerate(every_id)])
    yield collection
    collection.drop()


@pytest.fixture(scope="module")
def indexed(ids) -> Collection[dict[str, Any]]:
    """The collection on FerretDB, once the wrapper has indexed its table (within a second)."""
    if not is_ferretdb(ids.database):
        pytest.skip("MongoDB serves _id from its own index; explain differs")
    wait_until(lambda: uses_index(plan(ids, {"_id": "a"})), 10, "the _id index")
    return ids


def plan(collection: Collection[dict[str, Any]], filter_: dict[str, Any], **find: Any) -> dict[str, Any]:
    """FerretDB's explain of a find: its pushdown flags and SQLite's query plan."""
    command = {"find": collection.name, "filter": filter_, **find}
    explained: dict[str, Any] = collection.database.command("explain", command)
    return explained


def uses_index(explained: dict[str, Any]) -> bool:
    """Whether SQLite searches the table by the _id index, scanning nothing but a value list."""
    steps = explained["queryPlanner"]["Plan"]
    searched = any("USING INDEX" in step for step in steps)
    scanned = any(re.search(r"detail=SCAN (?!json_each)", step) for step in steps)
    return searched and not scanned


@pytest.mark.parametrize(
    "filter_",
    [
        {"_id": "a"},
        {"_id": {"$eq": "a"}},
        {"_id": OBJECT_ID},
        {"_id": {"$in": ["a", "é", "absent"]}},
        {"_id": {"$gte": "site\x1f2025-01-01", "$lt": "site\x1f2025-01-02"}},
        {"_id": {"$gt": "a"}},
        {"_id": {"$lte": "a"}},
        {"_id": {"$gte": "site\x1f", "$lt": "site\x1f\U0010ffff"}, "n": {"$gt": 3}},
    ],
    ids=repr,
)
def test_an_id_condition_is_served_from_the_index(indexed, filter_):
    explained = plan(indexed, filter_)
    assert explained["filterPushdown"] is True
    assert uses_index(explained), explained["queryPlanner"]


@pytest.mark.parametrize("direction", [1, -1])
def test_a_sort_on_id_under_a_string_condition_walks_the_index(indexed, direction):
    for filter_ in ({"_id": {"$gte": "a", "$lt": "b"}}, {"_id": {"$in": ["a", "ab"]}}):
        explained = plan(indexed, filter_, sort={"_id": direction}, limit=2)
        assert explained["sortPushdown"] is True
        assert uses_index(explained), explained["queryPlanner"]
        assert not any("TEMP B-TREE" in step for step in explained["queryPlanner"]["Plan"])


def test_ranges_find_the_strings_in_bson_order_in_both_directions(ids):
    for range_ in range_filters():
        expected = sorted((s for s in STRING_IDS if in_range(s, range_)), key=utf8)
        for direction, order in ((1, expected), (-1, expected[::-1])):
            found = [d["_id"] for d in ids.find({"_id": range_}).sort("_id", direction)]
            assert found == order, (range_, direction)
            first = [d["_id"] for d in ids.find({"_id": range_}).sort("_id", direction).limit(2)]
            assert first == order[:2], (range_, direction)
        assert ids.count_documents({"_id": range_}) == len(expected), range_


def test_a_range_with_another_field_filters_both(ids):
    range_ = {"$gte": "a", "$lt": "b"}
    found = ids.find({"_id": range_, "n": {"$mod": [2, 0]}}).sort("_id", -1)
    even = STRING_IDS[::2]  # numbered in order
    expected = sorted((s for s in even if in_range(s, range_)), key=utf8)
    assert [d["_id"] for d in found] == expected[::-1]


@pytest.mark.parametrize(
    "values",
    [
        ["a", "é", "absent"],
        STRING_IDS,
        ['{"$o":"65a1b2c3d4e5f60718293a4b"}'],
        [OBJECT_ID, "a"],
        [5, "a", None],
    ],
    ids=repr,
)
def test_in_finds_exactly_its_values_of_any_type(ids, values):
    expected = [v for v in values if v in STRING_IDS or v in OTHER_IDS]
    found = [d["_id"] for d in ids.find({"_id": {"$in": values}})]
    assert sorted(map(as_bson, found)) == sorted(map(as_bson, expected))


@pytest.mark.parametrize("id_", STRING_IDS + OTHER_IDS, ids=repr)
def test_equality_finds_the_one_document_of_any_type(ids, id_):
    found = list(ids.find({"_id": id_}))
    assert [d["_id"] for d in found] == [id_]
    assert found == list(ids.find({"_id": {"$eq": id_}}))


def test_updates_and_deletes_by_id_touch_exactly_their_documents(db):
    """An ObjectId and the string spelled as its JSON share `->>`; the server tells them apart."""
    collection = db[f"ids_{uuid.uuid4().hex[:8]}"]
    lookalike = '{"$o":"65a1b2c3d4e5f60718293a4b"}'
    collection.insert_many([{"_id": id_, "v": 0} for id_ in [*STRING_IDS, *OTHER_IDS]])
    try:
        assert collection.update_one({"_id": OBJECT_ID}, {"$set": {"v": 1}}).modified_count == 1
        assert collection.update_one({"_id": None}, {"$set": {"v": 3}}).modified_count == 1
        updated = collection.update_many({"_id": {"$gte": "a", "$lt": "b"}}, {"$set": {"v": 2}})
        assert updated.modified_count == 5
        values = {d["_id"] if d["_id"] != {"k": "a"} else "doc": d["v"] for d in collection.find()}
        assert values[OBJECT_ID] == 1
        assert values[lookalike] == 0
        assert values[None] == 3
        assert {k for k, v in values.items() if v == 2} == {"a", "a\x1f", "a\x1fb", "a b", "ab"}
        assert collection.delete_many({"_id": {"$in": [lookalike, 5, None]}}).deleted_count == 3
        assert collection.delete_one({"_id": OBJECT_ID}).deleted_count == 1
        assert collection.delete_many({"_id": {"$gt": "site", "$lte": "site2"}}).deleted_count == 3
        left = {as_bson(d["_id"]) for d in collection.find()}
        gone = {as_bson(id_) for id_ in [lookalike, 5, None, OBJECT_ID, *STRING_IDS[6:9]]}
        assert left == {as_bson(id_) for id_ in [*STRING_IDS, *OTHER_IDS]} - gone
    finally:
        collection.drop()
