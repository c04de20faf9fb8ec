"""Dead letters: one per event, the latest failure's, removed only as they were read."""

from datetime import datetime

from app.store import dead_letters
from tools.factories import make_message


def test_an_event_failing_again_keeps_one_letter_with_the_latest_failure(db):
    event = make_message()
    assert dead_letters.dead_letter(db, [(event, "boom")]) == 1
    assert dead_letters.dead_letter(db, [(event, "boom again")]) == 0
    [letter] = dead_letters.dead_letters(db, limit=10)
    assert letter["event"] == event
    assert letter["error"] == "boom again"
    assert isinstance(letter["failed_at"], datetime)
    assert dead_letters.count_dead_letters(db) == 1


def test_a_letter_replaced_after_it_was_read_is_not_removed_with_what_was_read(db):
    replayed, failed_again = make_message(), make_message()
    dead_letters.dead_letter(db, [(replayed, "boom"), (failed_again, "boom")])
    read = dead_letters.dead_letters(db, limit=10)
    dead_letters.dead_letter(db, [(failed_again, "boom again")])
    assert dead_letters.remove_as_read(db, read) == 1
    [left] = dead_letters.dead_letters(db, limit=10)
    assert (left["event"], left["error"]) == (failed_again, "boom again")
