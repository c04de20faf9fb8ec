"""Dead letters against the real server of the session (FerretDB locally): replaced when an
event fails again, removed only as they were read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from app.store import dead_letters
from tools.factories import make_message


@pytest.fixture
def letters_db(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    """A database of this test's own, so no other test's dead letters count."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True, socketTimeoutMS=20_000)
    name = f"dead_letters_{uuid.uuid4().hex[:8]}"
    yield client[name]
    client.drop_database(name)
    client.close()


def test_events_failing_again_replace_their_letters_in_commands_the_server_answers(letters_db):
    """More re-failures than FerretDB answers in one update command (it never did 100)."""
    events = [make_message() for _ in range(150)]
    assert dead_letters.dead_letter(letters_db, [(event, "boom") for event in events]) == 150
    assert dead_letters.dead_letter(letters_db, [(event, "boom again") for event in events]) == 0
    letters = dead_letters.dead_letters(letters_db, limit=500)
    assert len(letters) == 150
    assert {letter["error"] for letter in letters} == {"boom again"}


def test_only_letters_unchanged_since_read_are_removed_earlier_versions_letters_too(letters_db):
    replayed, failed_again, legacy = make_message(), make_message(), make_message()
    dead_letters.dead_letter(letters_db, [(replayed, "boom"), (failed_again, "boom")])
    letters_db[dead_letters.DEAD_EVENTS].insert_one(  # as earlier versions wrote a letter
        {"_id": legacy["event_id"], "event": legacy, "error": "boom", "failed_at": datetime.now(UTC)}
    )
    read = dead_letters.dead_letters(letters_db, limit=10)
    dead_letters.dead_letter(letters_db, [(failed_again, "boom again")])
    assert dead_letters.remove_as_read(letters_db, read) == 2
    [left] = dead_letters.dead_letters(letters_db, limit=10)
    assert (left["event"], left["error"]) == (failed_again, "boom again")
