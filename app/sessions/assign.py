"""Each event's visit, from its visitor's state: the visit it is in now and the one before,
each with the times of its first and last events seen so far (docs/sessions.md). A pure
function: the compactor keeps the states in MongoDB and folds a shard's events in stream
order (app/sessions/fold.py); `/stats/aggregated` assigns a period's raw events afresh.

An event joins the current visit when it lies within 30 minutes of it (before its first
event, between, or after its last), and widens it; an event later than that opens a new
visit, and the current one becomes the one before; an earlier event joins the visit before
when it is within 30 minutes of that one, and otherwise, belonging to a visit the state no
longer follows, gets a visit of its own. So every visit's events are chained by pauses under
30 minutes; events of one visitor that arrive out of order across a pause may split a visit
in two.

A visit's id is the key of the event that opened it (`opened_id`): its site, its time and
its event id, so a site's visits of a period are one `_id` range, and an event folded again
opens the same visit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from app.store import visits as visit_store
from app.store.events import stored_key
from app.visitors import VISIT_GAP, identity


def opened_id(site_id: str, moment: datetime, event_id: str) -> str:
    """The id of the visit an event opens."""
    return stored_key(site_id, moment, event_id)


@dataclass(frozen=True)
class Span:
    """A visit as its visitor's state follows it: its id, its first and last events' times."""

    visit: str
    first: datetime
    last: datetime

    def near(self, moment: datetime) -> bool:
        return self.first - VISIT_GAP <= moment <= self.last + VISIT_GAP

    def widened(self, moment: datetime) -> Span:
        return replace(self, first=min(self.first, moment), last=max(self.last, moment))


@dataclass
class VisitorState:
    """A visitor's current visit and the one before it (either absent)."""

    current: Span | None = None
    previous: Span | None = None


def _near(span: Span | None, moment: datetime) -> bool:
    return span is not None and span.near(moment)


def assign(state: VisitorState, moment: datetime, opened: str, yesterday: VisitorState | None = None) -> str:
    """The visit of the visitor's event at `moment`, `state` updated; `opened` is the id of
    the visit it would open. `yesterday`: the state of the visitor's previous day's id (a
    cookie-less visitor just after UTC midnight), whose current visit the visitor's first
    event under the new id goes on with when within 30 minutes of it."""
    if state.current is None and yesterday is not None and _near(yesterday.current, moment):
        state.current = yesterday.current
    current = state.current
    if current is not None and current.near(moment):
        state.current = current.widened(moment)
        return current.visit
    if current is not None and moment < current.first:
        if state.previous is not None and state.previous.near(moment):
            state.previous = state.previous.widened(moment)
            return state.previous.visit
        return opened
    if current is not None:
        state.previous = current
    state.current = Span(opened, moment, moment)
    return opened


def visits_of(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The visits of one site's stored events taken in time order, as the definition gives
    them, each summed up as the `visits` collection holds it. The previous day's visitor ids
    are not stored, so a cookie-less visit across UTC midnight is two visits here."""
    states: dict[str, VisitorState] = {}
    visits: dict[str, dict[str, Any]] = {}
    for event in sorted(events, key=lambda event: event["timestamp"]):
        visitor = identity(event)
        if not visitor:
            continue
        moment = event["timestamp"]
        opened = opened_id(event["site_id"], moment, event["event_id"])
        visit_id = assign(states.setdefault(visitor, VisitorState()), moment, opened)
        if visit_id not in visits:
            visits[visit_id] = visit_store.new_visit(visit_id, event["site_id"], visitor)
        visit_store.add_event(visits[visit_id], moment, event["event_type"], event.get("path"))
    return list(visits.values())
