"""Keeping a visit's `_id` close to its start: a visit is keyed by the event that opened it,
and its start moves back when earlier events of it arrive later; a period's visits are read
as an `_id` range reaching `LATE_START` past the period's end (reporting/queries.py), so a
visit whose start moved back further is keyed again by its first event.

A round writes the visit under its new key, then replaces the old document by a forwarding
one (`moved_to`, no summary: the reporting leaves it out), then the states naming the new
key, then deletes the forwarding documents. A round that dies between those steps is read
again from the same entries: before the forward, the old visit is as it was and the round
keys it again alike; after it, a state naming the old key finds the new visit through it,
which holds the round's entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pymongo.database import Database

from app.sessions.assign import Span, VisitorState, opened_id
from app.sessions.rows import VisitRow
from app.store import visits as visit_store
from app.store.events import KEY_SEPARATOR, key_time


def forwarded(
    db: Database[Any], visits: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The visits read, each forwarding document replaced by the visit it forwards to (also
    by its own id), and the forwarding documents' ids, left by a round that died."""
    forwards = {visit_id: visit["moved_to"] for visit_id, visit in visits.items() if "moved_to" in visit}
    if not forwards:
        return visits, set()
    targets = visit_store.find_visits(db, set(forwards.values()))
    found = {visit_id: visit for visit_id, visit in visits.items() if visit_id not in forwards}
    found.update(targets)
    found.update({old: targets[new] for old, new in forwards.items() if new in targets})
    return found, set(forwards)


def late_starts(
    visits: dict[str, dict[str, Any]], assigned: Iterable[tuple[Any, VisitRow, str]]
) -> dict[str, str]:
    """The visits whose start moved back more than `LATE_START` before their key, to the key
    of their first event (a row of this round: the one that moved the start)."""
    firsts = {
        visit_id: row
        for _, row, visit_id in assigned
        if visit_id in visits and row.moment == visits[visit_id]["start"]
    }
    renames: dict[str, str] = {}
    for visit_id, row in firsts.items():
        prefix = row.site_id + KEY_SEPARATOR
        keyed_at = visit_id[len(prefix) : len(prefix) + len(key_time(row.moment))]
        if visit_id.startswith(prefix) and key_time(row.moment + visit_store.LATE_START) < keyed_at:
            renames[visit_id] = opened_id(row.site_id, row.moment, row.event_id)
    return renames


def renamed(visits: dict[str, dict[str, Any]], renames: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The visits, those in `renames` under their new keys."""
    return {
        renames.get(visit_id, visit_id): {**visit, "_id": renames.get(visit_id, visit_id)}
        for visit_id, visit in visits.items()
    }


def forwarding(visits: dict[str, dict[str, Any]], renames: dict[str, str]) -> list[dict[str, Any]]:
    """The forwarding documents replacing the renamed visits."""
    return [
        {"_id": old, "site_id": visits[old]["site_id"], "moved_to": new}
        for old, new in sorted(renames.items())
    ]


def follow_renames(states: dict[str, VisitorState], renames: dict[str, str]) -> set[str]:
    """Point the states at the visits' new keys; return the keys of the states changed."""
    changed: set[str] = set()
    for key, state in states.items():
        spans = [state.current, *state.earlier]
        if not any(span is not None and span.visit in renames for span in spans):
            continue
        state.current = None if state.current is None else _renamed(state.current, renames)
        state.earlier = [_renamed(span, renames) for span in state.earlier]
        changed.add(key)
    return changed


def _renamed(span: Span, renames: dict[str, str]) -> Span:
    return replace(span, visit=renames.get(span.visit, span.visit))
