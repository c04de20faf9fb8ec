"""One event per NDJSON line, as exports write it and imports read it: the event as a client
would send it again, never the service's bookkeeping."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.ingestion.schemas import TEXT, to_message
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


def _derived_text() -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=256), *TEXT])


class DerivedFieldsSchema(Schema):
    """What the service derives for a live event and an export carries: ingestion's visitor id
    and country, and what the worker reads from the user agent and the page (docs/export.md),
    whose user agent is not stored. An import keeps them as exported, so that the imported
    events count the same visitors and fall in the same breakdowns."""

    class Meta:
        unknown = EXCLUDE

    visitor_id = fields.String(validate=validate.Regexp(r"^[0-9a-f]{32}$", error="Must be 32 hex digits."))
    country = fields.String(
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Must be an ISO 3166 alpha-2 code.")
    )
    source = _derived_text()
    utm_source = _derived_text()
    utm_medium = _derived_text()
    utm_campaign = _derived_text()
    utm_content = _derived_text()
    utm_term = _derived_text()
    device = fields.String(validate=validate.OneOf(["desktop", "mobile", "tablet"]))
    browser = _derived_text()
    browser_version = _derived_text()
    os = _derived_text()
    os_version = _derived_text()


derived_fields_schema = DerivedFieldsSchema()


def import_message(payload: Any, site_id: str | None = None) -> dict[str, Any]:
    """An imported event as the queue carries it: checked by the schema of a client's event,
    without the window of live timestamps, with its `event_id` (so that it counts once however
    often it is imported; made from the line's content when it has none) and the fields the
    service derived; in site `site_id` when given.

    Raises ValidationError, with the messages by field.
    """
    if not isinstance(payload, dict):
        raise ValidationError("Each line must be a JSON object: one event.", "_line")
    if payload.get("event_id") is None:
        payload = {**payload, "event_id": content_event_id(payload)}
    if site_id is not None:
        payload = {**payload, "site_id": site_id}
    errors: dict[str, Any] = {}
    try:
        message = to_message(payload)
    except ValidationError as error:
        errors.update(error.normalized_messages())
    try:
        derived = derived_fields_schema.load(payload)
    except ValidationError as error:
        errors.update(error.normalized_messages())
    if errors:
        raise ValidationError(errors)
    return message | derived


# The namespace of event ids made from a line's content (a random UUID, fixed once).
CONTENT_IDS = uuid.UUID("5b0d5f0e-7c44-4c8e-9a43-29c0e1a7d2b1")


def content_event_id(payload: dict[str, Any]) -> str:
    """The event id of a line that has none: a name-based UUID of its content, so that the same
    line imported again is the same event (and identical lines are one event)."""
    return str(uuid.uuid5(CONTENT_IDS, json.dumps(payload, sort_keys=True)))
