"""One event per NDJSON line, as exports write it and imports read it: the event as a client
would send it again, never the service's bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from app.store.events import INTERNAL_FIELDS, key_time

# The fields a line begins with, in the order of `POST /event`'s table; the rest follow as stored.
LEADING_FIELDS = ("site_id", "event_type", "path", "user_id", "timestamp", "event_id")


def export_line(document: Mapping[str, Any]) -> bytes:
    """A stored event as one NDJSON line: its timestamp in ISO 8601 (UTC, to the millisecond a
    BSON date keeps), absent values left out."""
    event = {name: document.get(name) for name in LEADING_FIELDS}
    event["timestamp"] = key_time(document["timestamp"])
    event.update(
        (name, value) for name, value in document.items() if name not in event and name not in INTERNAL_FIELDS
    )
    event.pop("_id", None)
    return orjson.dumps({name: value for name, value in event.items() if value is not None}) + b"\n"
