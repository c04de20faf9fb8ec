"""One event per NDJSON line, as exports write it and imports read it: the event as a client
would send it again, never the service's bookkeeping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from app.ingestion.schemas import to_message
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


class DerivedFieldsSchema(Schema):
    """What ingestion derives for a live event and an export carries: an import keeps them
    as exported, so that the imported events count the same visitors."""

    class Meta:
        unknown = EXCLUDE

    visitor_id = fields.String(validate=validate.Regexp(r"^[0-9a-f]{32}$", error="Must be 32 hex digits."))
    country = fields.String(
        validate=validate.Regexp(r"^[A-Z]{2}$", error="Must be an ISO 3166 alpha-2 code.")
    )


derived_fields_schema = DerivedFieldsSchema()


def import_message(payload: Any, site_id: str | None = None) -> dict[str, Any]:
    """An imported event as the queue carries it: checked by the schema of a client's event,
    without the window of live timestamps, with its `event_id` (so that it counts once however
    often it is imported) and the fields ingestion derives; in site `site_id` when given.

    Raises ValidationError, with the messages by field.
    """
    if not isinstance(payload, dict):
        raise ValidationError("Each line must be a JSON object: one event.", "_line")
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
