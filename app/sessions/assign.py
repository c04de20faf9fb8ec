"""Each event's visit, from its visitor's state: the visit it is in now and a few earlier
ones, each with the times of its first and last events seen so far (docs/sessions.md). A pure
function: the compactor keeps the states in MongoDB and folds a shard's events in stream
order (app/sessions/fold.py); `/stats/aggregated` assigns a period's raw events afresh.

An event joins the current visit when it lies within 30 minutes of it (before its first
event, between, or after its last), and widens it; an event later than that opens a new
visit, and the current one becomes an earlier one; an earlier event joins an earlier visit
it is within 30 minutes of, and otherwise opens one, which the state follows among the
earlier ones, so that the next events of a late batch join it. The state follows a bounded
number of earlier visits (`EARLIER`), forgetting the one that ended first. So every visit's
events are chained by pauses under 30 minutes; events of one visitor that arrive out of
order across a pause may split a visit in two.

A visit's id is the key of the event that opened it (`opened_id`): its site, its time and
its event id, so a site's visits of a period are one `_id` range, and an event folded again
opens the same visit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from app.store import visits as visit_store
from app.store.events import stored_key
from app.visitors import VISIT_GAP, identity

# The earlier visits a state follows besides its current one: enough for a late batch's
# visits to go on while it is folded, few enough that a state stays one small document.
EARLIER = 3


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
    """A visitor's current visit (the one that ended last, or none) and a few earlier ones."""

    current: Span | None = None
    earlier: list[Span] = field(default_factory=list)

    def follow(self, span: Span) -> None:
        """Follow an earlier visit too; beyond `EARLIER`, forget the one that ended first
        among the others (the one just followed is the one the next events may join)."""
        if len(self.earlier) >= EARLIER:
            self.earlier.remove(min(self.earlier, key=lambda kept: kept.last))
        self.earlier.append(span)


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
        for index, span in enumerate(state.earlier):
            if span.near(moment):
                state.earlier[index] = span.widened(moment)
                return span.visit
        state.follow(Span(opened, moment, moment))
        return opened
    if current is not None:
        state.follow(current)
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
