"""Dead letters: one per event, the latest failure's, holding the copy of the batch that
first dead-lettered it; removed by key, each by one remover."""

import time
from datetime import UTC, datetime

from app.store import dead_letters
from app.store.events import event_key
from tools.factories import make_message


def test_an_event_failing_again_keeps_one_letter_with_the_latest_failure_and_the_first_batch(db):
    event = make_message()
    assert dead_letters.dead_letter(db, [(event, "boom")], batch_id="batch-1") == set()
    assert dead_letters.dead_letter(db, [(event, "boom again")], batch_id="batch-1") == set()
    assert dead_letters.dead_letter(db, [(event, "boom a third time")], batch_id="batch-2") == {
        event_key(event)
    }
    [letter] = list(dead_letters.dead_letters(db))
    assert letter["event"] == event
    assert (letter["error"], letter["batch_id"]) == ("boom a third time", "batch-1")
    assert isinstance(letter["failed_at"], datetime)
    assert dead_letters.count_dead_letters(db) == 1


def test_a_letter_of_an_earlier_version_holds_another_batchs_copy(db):
    event = make_message()
    db[dead_letters.DEAD_EVENTS].insert_one(  # as earlier versions wrote a letter: no batch
        {"_id": event_key(event), "event": event, "error": "boom", "failed_at": datetime.now(UTC)}
    )
    assert dead_letters.dead_letter(db, [(event, "boom again")], batch_id="batch-1") == {event_key(event)}


def test_letters_are_read_oldest_first_up_to_a_moment(db):
    first, second = make_message(), make_message()
    dead_letters.dead_letter(db, [(first, "boom")], batch_id="batch-1")
    time.sleep(0.01)  # the server keeps milliseconds
    moment = datetime.now(UTC)
    time.sleep(0.01)
    dead_letters.dead_letter(db, [(second, "boom")], batch_id="batch-2")
    assert [letter["event"] for letter in dead_letters.dead_letters(db)] == [first, second]
    assert [letter["event"] for letter in dead_letters.dead_letters(db, failed_by=moment)] == [first]


def test_removing_letters_says_which_this_call_removed(db):
    kept, removed = make_message(), make_message()
    dead_letters.dead_letter(db, [(kept, "boom"), (removed, "boom")], batch_id="batch-1")
    assert dead_letters.remove(db, {event_key(removed), "no-such-letter"}) == {event_key(removed)}
    assert dead_letters.remove(db, {event_key(removed)}) == set()
    assert [letter["event"] for letter in dead_letters.dead_letters(db)] == [kept]
