"""Folding a shard's events into their visits: the compactor's part, one writer per visitor
(a visitor belongs to one site, a site to one shard, and one holder of the shard's lock
reads its stream in order).

For a round's fresh entries (`app.rollups.compactor._apply`, after its skips), their rows
(`app/sessions/rows.py`) are taken in stream order, each entry's in time order:
1. the states of the rows' visitors (and of their previous day's ids) are read by `_id`, a
   slice at a time, then the visits they follow (a state names its current visit and a few
   earlier ones; their first and last times are the visits' own `start` and `end`); a row of
   an entry at or before its visitor's `through` was folded already and is skipped;
2. each other row is given its visit (`assign.assign`), its visitor's state updated;
3. the visits the rows open are read too, and each row is added to its visit's summary,
   unless the visit's own `through` holds its entry;
4. the visits are written, then the states whose visits changed (a visit opened, an earlier
   one forgotten, a visit keyed again, or a new day's id taking up the previous day's
   visit), each with the round's last entry as `through` and the hold's fence: new
   documents in one insert, changed ones replaced in bulk. A visit whose start moved back
   past `LATE_START` is written under a new key (`app/sessions/rekey.py`). A state is not
   rewritten for a row that only widened one of its visits: on FerretDB each replacement is
   a transaction of its own, and a visitor seen again costs its visit's replacement alone.

Folded again after a round died, before its markers, a row gets the visit it got: its
state's visits hold every row the round folded, so they are only wider, and a row that
finds another visit now finds one the round wrote, whose `through` holds the row's entry;
while a state whose visits changed was written with the round's `through` and skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis
from pymongo.database import Database

from app.rollups import generations
from app.rollups.entries import Entry, stream_order
from app.rollups.lease import Lease
from app.sessions import rekey
from app.sessions.assign import Span, VisitorState, assign, opened_id
from app.sessions.rows import VisitRow
from app.store import visits as visit_store

# Ids read in one query: a round's visitors, then their visits, a slice at a time.
IDS_PER_SLICE = 1000


def fold_visits(
    db: Database[Any], client: redis.Redis, hold: Lease, shard: int, fresh: list[Entry], through: str
) -> None:
    """Fold the rows of `fresh` (in stream order) into their visits, `through` being the
    round's last entry."""
    rows = [(entry.order, row) for entry in fresh for row in entry.visits]
    if not rows:
        return
    keys = {row.key for _, row in rows} | {row.previous_key for _, row in rows if row.previous_key}
    stored_states = _read(db, visit_store.find_states, keys)
    stored_visits, forwards = rekey.forwarded(
        db, _read(db, visit_store.find_visits, _followed(stored_states.values()))
    )
    states: dict[str, VisitorState] = {}

    def state(key: str) -> VisitorState:
        if key not in states:
            states[key] = _loaded(stored_states.get(key), stored_visits)
        return states[key]

    assigned: list[tuple[tuple[int, int], VisitRow, str]] = []
    for order, row in rows:
        if _holds(stored_states.get(row.key), order):
            continue
        yesterday = state(row.previous_key) if row.previous_key else None
        opened = opened_id(row.site_id, row.moment, row.event_id)
        assigned.append((order, row, assign(state(row.key), row.moment, opened, yesterday)))
    if not assigned:
        return
    visits, new_visits = _summaries(db, assigned, stored_visits)
    renames = rekey.late_starts(visits, assigned)
    forwarding = rekey.forwarding(visits, {old: new for old, new in renames.items() if old not in new_visits})
    if renames:
        visits, new_visits = _keyed_again(db, visits, new_visits, renames)
    candidates = {row.key for _, row, _ in assigned} | (states.keys() & stored_states.keys())
    rekey.follow_renames(states, renames)
    moved = [key for key in sorted(candidates) if _moved(states[key], stored_states.get(key))]
    state_documents = [_state_document(key, shard, states[key]) for key in moved]
    with generations.writing(client, shard, {row.site_id for _, row, _ in assigned}):
        _save(db, hold, visit_store.VISITS, list(visits.values()), new_visits, through)
        # After the visits under their new keys, before the states that name them (rekey.py).
        _save(db, hold, visit_store.VISITS, forwarding, set(), through)
        new_states = set(moved) - stored_states.keys()
        _save(db, hold, visit_store.VISIT_STATES, state_documents, new_states, through)
        _delete_forwarding(db, hold, forwards | {document["_id"] for document in forwarding})


def _keyed_again(
    db: Database[Any], visits: dict[str, dict[str, Any]], new: set[str], renames: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The visits, those in `renames` under their new keys, and which of them are new (a new
    key may be stored already, by a round that died before its states)."""
    stored = visit_store.find_visits(db, renames.values()).keys()
    kept_new = {visit_id for visit_id in new if visit_id not in renames}
    return rekey.renamed(visits, renames), kept_new | (set(renames.values()) - stored)


def _delete_forwarding(db: Database[Any], hold: Lease, visit_ids: set[str]) -> None:
    if not visit_ids:
        return

    def delete() -> None:
        hold.check()
        visit_store.delete_visits(db, visit_ids)

    hold.write_fenced(delete)


def _summaries(
    db: Database[Any],
    assigned: list[tuple[tuple[int, int], VisitRow, str]],
    followed: dict[str, dict[str, Any]],
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The visits the rows change, each row added unless its visit holds it; and which of
    them are new. `followed`: the stored visits the states follow, read already."""
    opened = {visit for _, _, visit in assigned} - followed.keys()
    stored = {**followed, **_read(db, visit_store.find_visits, opened)}
    visits: dict[str, dict[str, Any]] = {}
    for order, row, visit_id in assigned:
        found = stored.get(visit_id)
        if _holds(found, order):
            continue
        visit = visits.get(visit_id)
        if visit is None:
            visit = (
                dict(found)
                if found is not None
                else visit_store.new_visit(visit_id, row.site_id, row.visitor)
            )
            visits[visit_id] = visit
        visit_store.add_event(visit, row.moment, row.event_type, row.path)
    return visits, visits.keys() - stored.keys()


def _save(
    db: Database[Any],
    hold: Lease,
    collection: str,
    documents: list[dict[str, Any]],
    new: set[str],
    through: str,
) -> None:
    """Write the documents holding `through`, with the hold's fence."""
    if not documents:
        return

    def write() -> None:
        fenced = [
            {**document, "through": through, "fence": hold.fence, "holder": hold.token}
            for document in documents
        ]
        visit_store.save(db, collection, fenced, new, before_each_write=hold.check)

    hold.write_fenced(write)


def _holds(document: dict[str, Any] | None, order: tuple[int, int]) -> bool:
    """Whether a stored visit or state has the entry at `order` folded into it already."""
    return document is not None and stream_order(document["through"]) >= order


def _followed(states: Iterable[dict[str, Any]]) -> set[str]:
    """The ids of the visits stored states follow."""
    return {visit for state in states for visit in visit_store.followed_ids(state)}


def _loaded(document: dict[str, Any] | None, visits: dict[str, dict[str, Any]]) -> VisitorState:
    """A stored state, its visits' times read from the visits themselves."""
    if document is None:
        return VisitorState()
    earlier = [_span(visit_id, visits) for visit_id in document.get("earlier", [])]
    return VisitorState(_span(document.get("current"), visits), [span for span in earlier if span])


def _span(visit_id: str | None, visits: dict[str, dict[str, Any]]) -> Span | None:
    visit = visits.get(visit_id) if visit_id else None
    return None if visit is None else Span(visit["_id"], visit["start"], visit["end"])


def _state_document(key: str, shard: int, state: VisitorState) -> dict[str, Any]:
    current, until = (None, None) if state.current is None else (state.current.visit, state.current.last)
    return visit_store.state_document(key, shard, current, [span.visit for span in state.earlier], until)


def _moved(state: VisitorState, stored: dict[str, Any] | None) -> bool:
    """Whether the visits a state follows changed since it was stored."""
    before = stored or {}
    current = None if state.current is None else state.current.visit
    return before.get("current") != current or before.get("earlier") != [span.visit for span in state.earlier]


def _read(
    db: Database[Any],
    find: Callable[[Database[Any], Iterable[str]], dict[str, dict[str, Any]]],
    ids: Iterable[str],
) -> dict[str, dict[str, Any]]:
    wanted = sorted(ids)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), IDS_PER_SLICE):
        found.update(find(db, wanted[start : start + IDS_PER_SLICE]))
    return found
