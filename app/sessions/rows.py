"""The rows a worker appends, in a batch's stream entry, for the compactor to fold into the
visits: one per event the batch stored that has an identity, with what its visit needs.

A row is a JSON array: the site, the visitor (`app.visitors.identity`), the previous day's
visitor id or null, the time (as keys hold it), the event id, the event type and the path.
Reading rows never fails: a row that cannot be read is left out (logged), so that it never
stops its shard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.store.events import key_time
from app.store.user_numbers import user_key
from app.visitors import identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisitRow:
    site_id: str
    visitor: str
    previous_visitor: str | None
    moment: datetime
    event_id: str
    event_type: str
    path: str | None

    @property
    def key(self) -> str:
        """The `_id` of the visitor's state: its site and identity, keyed as a user's number
        is (a long identity by its hash, so the key stays short whatever clients send)."""
        return user_key(self.site_id, self.visitor)

    @property
    def previous_key(self) -> str | None:
        return None if self.previous_visitor is None else user_key(self.site_id, self.previous_visitor)


def rows_of(
    events: Iterable[Mapping[str, Any]], previous_ids: Mapping[tuple[str, str], str]
) -> dict[str, list[list[Any]]]:
    """The rows of stored events (documents) by site; `previous_ids`: the previous day's
    visitor id of events that came with one, by site and event id (it is not stored)."""
    by_site: dict[str, list[list[Any]]] = {}
    for event in events:
        visitor = identity(event)
        # (An event the previous release stored under its bare event id may lack the field.)
        if not visitor or not event.get("event_id"):
            continue
        previous = None if event.get("user_id") else previous_ids.get((event["site_id"], event["event_id"]))
        row = [
            event["site_id"],
            visitor,
            previous,
            key_time(event["timestamp"]),
            event["event_id"],
            event["event_type"],
            event.get("path"),
        ]
        by_site.setdefault(event["site_id"], []).append(row)
    return by_site


def read_rows(raw: bytes) -> list[VisitRow]:
    """The rows of an entry's `visits` field, in time order; those that cannot be read left out."""
    if not raw:
        return []
    try:
        rows = orjson.loads(raw)
        if not isinstance(rows, list):
            raise TypeError(f"a list of rows, not {type(rows).__name__}")
    except (ValueError, TypeError) as error:
        logger.warning("visit rows left out, unreadable: %r", error)
        return []
    read = [row for row in map(_row, rows) if row is not None]
    return sorted(read, key=lambda row: row.moment)


def _row(fields: Any) -> VisitRow | None:
    try:
        site_id, visitor, previous, moment, event_id, event_type, path = fields
        row = VisitRow(
            _text(site_id),
            _text(visitor),
            None if previous is None else _text(previous),
            datetime.fromisoformat(_text(moment)).astimezone(UTC),
            _text(event_id),
            _text(event_type),
            None if path is None else _text(path),
        )
    except (ValueError, TypeError) as error:
        logger.warning("a visit row left out, unreadable: %r", error)
        return None
    return row


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"a string, not {value!r}"[:200])
    return value
