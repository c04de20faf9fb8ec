"""Folding a shard's events into their visits: the compactor's part, one writer per visitor
(a visitor belongs to one site, a site to one shard, and one holder of the shard's lock
reads its stream in order).

For a round's fresh entries (`app.rollups.compactor._apply`, after its skips), their rows
(`app/sessions/rows.py`) are taken in stream order, each entry's in time order:
1. the states of the rows' visitors (and of their previous day's ids) are read by `_id`, a
   slice at a time; a row of an entry at or before its visitor's `through` was folded
   already and is skipped;
2. each other row is given its visit (`assign.assign`), its visitor's state updated;
3. the visits found are read by `_id`, and each row is added to its visit's summary, unless
   the visit's own `through` holds its entry (a round that died after saving the visits
   and before the states assigns them the same visits again, and adds nothing twice);
4. the visits are written, then the states, each with the round's last entry as `through`
   and the hold's fence: new documents in one insert, changed ones replaced in bulk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis
from pymongo.database import Database

from app.rollups import generations
from app.rollups.entries import Entry, stream_order
from app.rollups.lease import Lease
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
    states: dict[str, VisitorState] = {}

    def state(key: str) -> VisitorState:
        if key not in states:
            states[key] = _loaded(stored_states.get(key))
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
    visits, new_visits = _summaries(db, assigned)
    changed = sorted({row.key for _, row, _ in assigned})
    state_documents = [visit_store.state_document(key, _spans(states[key])) for key in changed]
    with generations.writing(client, shard, {row.site_id for _, row, _ in assigned}):
        _save(db, hold, visit_store.VISITS, list(visits.values()), new_visits, through)
        _save(
            db, hold, visit_store.VISIT_STATES, state_documents, set(changed) - stored_states.keys(), through
        )


def _summaries(
    db: Database[Any], assigned: list[tuple[tuple[int, int], VisitRow, str]]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The visits the rows change, each row added unless its visit holds it; and which of
    them are new."""
    stored = _read(db, visit_store.find_visits, {visit for _, _, visit in assigned})
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


def _loaded(document: dict[str, Any] | None) -> VisitorState:
    if document is None:
        return VisitorState()
    return VisitorState(Span.load(document.get("current")), Span.load(document.get("previous")))


def _spans(state: VisitorState) -> dict[str, Any]:
    return {
        "current": None if state.current is None else state.current.document(),
        "previous": None if state.previous is None else state.previous.document(),
    }


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
