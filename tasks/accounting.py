"""What a delivery of a batch leaves to count: the dead letters its stored events no longer
need, and how each of its events counts in the reconciliation (app/queue/counters.py).

Each accepted copy of an event counts once: as persisted by the batch that stored it, as
repeated by another batch that carried it, or as dead while a letter holds it. A letter
holds the copy of the batch that first dead-lettered the event (`dead_letters.dead_letter`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.database import Database

from app.queue import counters, is_replay
from app.store import dead_letters
from app.store import events as event_store
from app.store.events import event_key


@dataclass
class Stored:
    """What MongoDB holds of a batch's events after a delivery, by event key."""

    # The stored documents of the events this batch stored, in this delivery or an earlier one.
    owned: list[dict[str, Any]]
    # Events another batch stored (a client's retry, another replay of a letter).
    elsewhere: set[str] = field(default_factory=set)
    # Events this delivery dead-lettered, and of those, the ones whose letter holds another
    # batch's copy (`dead_letters.dead_letter`).
    dead: set[str] = field(default_factory=set)
    held_elsewhere: set[str] = field(default_factory=set)


def remove_letters(db: Database[Any], batch_id: str, stored: Stored) -> set[str]:
    """Remove the letters of stored events that this batch may remove; the keys of those whose
    copy becomes a repeat, counted by the batch that removed the letter.

    Before settling, so that a delivery that dies between the two is followed by one that
    finds the letters gone and counts what it stored. A batch removes its own letters (an
    earlier delivery's, which died before settling); a replay every letter of a stored
    event. The copy a removed letter held counts as a repeat when the event was stored by
    a batch that was neither a replay (which counted it, as persisted) nor the letter's own.
    """
    letters = dead_letters.letters_of(db, {event["_id"] for event in stored.owned} | stored.elsewhere)
    if not is_replay(batch_id):
        dead_letters.remove(
            db, {key for key, letter in letters.items() if letter.get("batch_id") == batch_id}
        )
        return set()
    storers = event_store.stored_events(
        db, [letters[key]["event"] for key in stored.elsewhere & letters.keys()]
    )
    repeats = {
        key
        for key, event in storers.items()
        if not is_replay(event.get("batch_id")) and event.get("batch_id") != letters[key].get("batch_id")
    }
    return repeats & dead_letters.remove(db, letters.keys())


def counted(
    messages: Sequence[Mapping[str, Any]], batch_id: str, stored: Stored, repeats: Collection[str]
) -> dict[str, list[Mapping[str, Any]]]:
    """The batch's events by how they count: once each, as persisted if the batch stored it.
    Otherwise a batch ingestion accepted counts it not at all if it dead-lettered it and the
    letter holds its copy (the dead letters count it), else as repeated (another batch
    stored it, its letter holds another batch's copy, or it came earlier in this one). A
    replay, whose events were counted as accepted once already, counts as repeated only
    the copies of `repeats`."""
    kinds: dict[str, list[Mapping[str, Any]]] = {counters.PERSISTED: [], counters.REPEATED: []}
    persisted = {event["_id"] for event in stored.owned}
    held_here = stored.dead - stored.held_elsewhere
    replay = is_replay(batch_id)
    seen: set[str] = set()
    for message in messages:
        key = event_key(message)
        first = key not in seen
        seen.add(key)
        if first and key in persisted:
            kinds[counters.PERSISTED].append(message)
        elif replay:
            if first and key in repeats:
                kinds[counters.REPEATED].append(message)
        elif not (first and key in held_here):
            kinds[counters.REPEATED].append(message)
    return kinds
