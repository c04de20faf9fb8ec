"""Marshmallow schemas for the payloads ingestion accepts and the messages it queues."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

MISSING_MESSAGE = "Missing data for required field."
NO_CONTROL_CHARACTERS = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="Must not contain control characters.")


def _required_string(max_length: int, *extra: validate.Validator) -> fields.String:
    # null is reported like an absent field: to a client both mean "you did not send it".
    return fields.String(
        required=True,
        validate=[validate.Length(min=1, max=max_length), *extra],
        error_messages={"required": MISSING_MESSAGE, "null": MISSING_MESSAGE},
    )


class EventSchema(Schema):
    """One analytics event, as `POST /event` receives it and the queue carries it.

    Unknown fields are ignored so that clients sending newer fields keep working.
    """

    class Meta:
        unknown = EXCLUDE
        ordered = True

    site_id = _required_string(128, NO_CONTROL_CHARACTERS)
    event_type = _required_string(64)
    path = fields.String(allow_none=True, validate=validate.Length(max=2048))
    user_id = fields.String(allow_none=True, validate=validate.Length(max=256))
    timestamp = fields.AwareDateTime(
        required=True,
        default_timezone=UTC,
        error_messages={"required": MISSING_MESSAGE, "null": MISSING_MESSAGE},
    )
    # Optional: a client that retries with the same id is never counted twice.
    event_id = fields.UUID(load_default=uuid.uuid4)


def missing_fields(messages: dict[str, Any]) -> list[str]:
    """The fields a validation error reports as missing, in schema order."""
    return [name for name, errors in messages.items() if errors == [MISSING_MESSAGE]]


event_schema = EventSchema()
