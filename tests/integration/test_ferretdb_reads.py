"""A find with a projection answers as the whole documents say, whatever they hold: the local
FerretDB decodes only the fields a find reads (tools/ferretdb/read-fields.patch), by a
decoder of its own, and projects top-level fields without copying documents."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Int64, ObjectId, Regex, Timestamp
from pymongo.collection import Collection

AWKWARD = ["", "a\x1fb", "\x00\x01\x7f", 'say "hi"', "back\\slash", "<&>\u2028", "Zürich 日本 😀", "{", "é"]

# Documents of many shapes: fields of every type, in different orders, some absent or null,
# nested documents and arrays, keys beyond ASCII letters (FerretDB v1.24.2 refuses a key
# holding a double quote: its SQLite JSON path is malformed).
DOCUMENTS: list[dict[str, Any]] = [
    {"_id": f"site\x1f2025-01-01T00:00:0{n}.000Z\x1fe{n}", "n": n, "s": text, "nested": {"x": n, "y": [text]}}
    for n, text in enumerate(AWKWARD)
] + [
    {"_id": "all types", "n": 100, "s": "x", "i64": Int64(2**40), "f": 2.5, "t": True, "none": None},
    {"_id": "more types", "n": -3, "date": datetime(2025, 1, 1, 12, 0, 0, 1000, UTC), "oid": ObjectId()},
    {"_id": "odd types", "n": 7, "bytes": b"\x00\xff", "re": Regex("^a.c$", "i"), "ts": Timestamp(5, 1)},
    {"s": "order first", "_id": "reordered", "n": 8, "k q": "spaced key", "ключ": "unicode key"},
    {"_id": 42, "n": 9, "s": None, "nested": {}, "arr": []},
    {"_id": ObjectId("65a1b2c3d4e5f60718293a4b"), "n": 10, "nested": {"x": {"deep": [1, {"z": "w"}]}}},
]

FILTERS: list[dict[str, Any]] = [
    {},
    {"n": {"$gte": 3}},
    {"s": {"$type": "string"}, "n": {"$lt": 100}},
    {"nested.x": {"$gte": 2}},
    {"$or": [{"n": 0}, {"s": "x"}]},
    {"_id": {"$gte": "site\x1f2025-01-01T00:00:02", "$lt": "site\x1f2025-01-01T00:00:06"}},
]

PROJECTIONS: list[dict[str, Any]] = [
    {"_id": 1},
    {"s": 1},
    {"_id": 0, "nested": 1, "n": True},
    {"s": 1, "absent": 1, "k q": 1, "ключ": 1},
    {"nested": 0},
    {"_id": 0},
]


def projected(document: dict[str, Any], projection: dict[str, Any]) -> dict[str, Any]:
    """What MongoDB's rules make of a document under a top-level projection."""
    with_id = bool(projection.get("_id", 1))
    chosen = {key: bool(value) for key, value in projection.items() if key != "_id"}
    # {_id: 1} alone includes _id only
    if any(chosen.values()) or projection == {"_id": 1}:  # _id first, then the rest in document order
        result = {"_id": document["_id"]} if with_id else {}
        result.update((key, value) for key, value in document.items() if chosen.get(key) and key != "_id")
        return result
    return {key: value for key, value in document.items() if key not in chosen and (with_id or key != "_id")}


@pytest.fixture(scope="module")
def shapes(db) -> Iterator[Collection[dict[str, Any]]]:
    collection = db[f"shapes_{uuid.uuid4().hex[:8]}"]
    collection.insert_many(DOCUMENTS)
    yield collection
    collection.drop()


@pytest.mark.parametrize("filter_", FILTERS, ids=repr)
@pytest.mark.parametrize("projection", PROJECTIONS, ids=repr)
def test_a_projected_find_answers_as_the_whole_documents_say(shapes, filter_, projection):
    whole = list(shapes.find(filter_).sort("n", 1))
    assert whole, "every filter matches some documents"
    found = list(shapes.find(filter_, projection).sort("n", 1))
    assert [list(d.items()) for d in found] == [list(projected(d, projection).items()) for d in whole]


def test_a_projected_find_reads_what_its_filter_and_sort_need(shapes):
    """Neither the filter's field nor the sort's is among the projected ones."""
    found = list(shapes.find({"nested.x": {"$gte": 2}}, {"_id": 0, "s": 1}).sort("n", -1))
    assert found == [{"s": text} for text in reversed(AWKWARD[2:])]
