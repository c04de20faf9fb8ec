"""Segment's tracking API format: its messages mapped onto our events, its answers, and the
OpenAPI description of its endpoints (the endpoints are app/ingestion/segment.py).

Mapped: a `track` is an event named by its `event`, with `properties` as props; a `page` is a
`page_view` whose `url`, `path`, `referrer` and `title` come from `properties`, else from
`context.page`, the other properties being its props. `userId` is the user id; without one,
`anonymousId`, the stable id Segment's clients make for a visitor, stands in for it: it
counts one visitor as the site's own code names it, where a hash of the sending server's
address would merge every visitor of that server into one. `messageId` is the event id (a
UUID as it is, anything else as a UUID5 of the site and it), so a message sent again is
stored once. `context.ip` and `context.userAgent` are the visitor's address and user agent,
`context.locale` their language, `context.screen` their screen. Other calls (`identify`,
`group`, `alias`, `screen`) are answered and store nothing.
"""

from __future__ import annotations

import json
import uuid
from http import HTTPStatus
from typing import Any

from marshmallow import fields

from app.ingestion.dropin import now_iso, present, url_path
from app.ingestion.schemas import MAX_PROP_VALUE_BYTES
from app.web.openapi import AnswerSchema, json_response

TRACK = "track"
PAGE = "page"
PAGE_VIEW = "page_view"
PAGE_FIELDS = ("url", "path", "referrer", "title")
# The names Segment's answers use for our statuses; others are named after their phrase.
CODES = {400: "invalid_request", 401: "unauthorized"}
ERRORS = (400, 401, 403, 413, 415, 429, 503, 504)


def segment_error(status: int, message: str, rest: dict[str, Any]) -> dict[str, Any]:
    """Segment's error body: its SDKs read `code` and `message`."""
    code = CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "_")
    return {"success": False, "code": code, "message": message, **rest}


def event_id(site_id: str, message_id: str) -> str:
    """Our event id of a Segment `messageId`: the same for every copy of a message."""
    try:
        return str(uuid.UUID(message_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site_id}\x1f{message_id}"))


def segment_event(site_id: str, message: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """Our event body for a Segment message of type `kind`, or None for a call we do not store."""
    if kind not in (TRACK, PAGE):
        return None
    context = as_object(message.get("context"))
    properties = as_object(message.get("properties"))
    page = {**as_object(context.get("page")), **properties} if kind == PAGE else {}
    message_id = message.get("messageId")
    return present(
        site_id=site_id,
        event_type=message.get("event") if kind == TRACK else PAGE_VIEW,
        timestamp=message.get("timestamp") or now_iso(),
        event_id=event_id(site_id, message_id) if isinstance(message_id, str) and message_id else None,
        user_id=message.get("userId") or message.get("anonymousId"),
        props=flat_props(
            properties if kind == TRACK else {k: v for k, v in properties.items() if k not in PAGE_FIELDS}
        ),
        ip=context.get("ip"),
        user_agent=context.get("userAgent"),
        language=context.get("locale"),
        screen=screen(context.get("screen")),
        url=page.get("url"),
        path=page.get("path") or url_path(page.get("url")),
        referrer=page.get("referrer"),
        title=page.get("title"),
    )


def flat_props(properties: dict[str, Any]) -> dict[str, Any] | None:
    """Segment's properties as our flat props: a nested value (the e-commerce spec's
    `products: [...]`) as its compact JSON text when that fits a prop's bound, else left out,
    so that the event is kept rather than refused (the SDK, answered `success`, never sends
    it again)."""
    flat = {}
    for key, value in properties.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            if len(value.encode("utf-8", "surrogatepass")) > MAX_PROP_VALUE_BYTES:
                continue
        flat[key] = value
    return flat or None


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def screen(value: Any) -> str | None:
    """`{"width": 1920, "height": 1080}` as our `screen`, `1920x1080`."""
    size = as_object(value)
    width, height = size.get("width"), size.get("height")
    return f"{width}x{height}" if isinstance(width, int) and isinstance(height, int) else None


class SegmentAnsweredSchema(AnswerSchema):
    success = fields.Boolean(required=True)


class SegmentErrorSchema(AnswerSchema):
    """Segment's error body."""

    success = fields.Boolean(required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)


def operation(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{summary} (Segment's tracking API, docs/dropin.md)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                200: json_response(SegmentAnsweredSchema, "Queued (invalid messages reported by index)"),
                **{status: json_response(SegmentErrorSchema, HTTPStatus(status).phrase) for status in ERRORS},
            },
        }
    }


MESSAGE = {"type": "object"}
OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/v1/batch": operation(
        "Segment messages",
        {
            "type": "object",
            "required": ["batch"],
            "properties": {"batch": {"type": "array", "items": MESSAGE}, "context": MESSAGE},
        },
    ),
    "/v1/track": operation("One Segment track call", MESSAGE),
    "/v1/page": operation("One Segment page call", MESSAGE),
}
