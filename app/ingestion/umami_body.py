"""Umami's `/api/send` format: its body's schema, its error shape and how its events map onto
ours (the endpoint itself is app/ingestion/umami.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from marshmallow import EXCLUDE, Schema, fields, validate

from app.ingestion.dropin import now_iso, present, url_path
from app.web.errors import MISSING_MESSAGE
from app.web.openapi import AnswerSchema, json_response

EVENT = "event"
TYPES = (EVENT, "identify", "performance")
PAGE_VIEW = "page_view"
# Umami's codes for the statuses it answers; others are named after their HTTP phrase.
CODES = {500: "server-error"}
ERRORS = (400, 403, 413, 415, 429, 503, 504)


class PayloadSchema(Schema):
    """What Umami's own endpoint checks of a payload; our event's rules apply after."""

    class Meta:
        unknown = EXCLUDE

    website = fields.UUID(required=True, error_messages={"required": MISSING_MESSAGE})
    hostname = fields.String(validate=validate.Length(max=100))
    url = fields.String()
    referrer = fields.String()
    title = fields.String()
    screen = fields.String()
    language = fields.String()
    name = fields.String(validate=validate.Length(max=50))
    data = fields.Dict()
    # Seconds of the years 1970 to 9999, the dates an event may have.
    timestamp = fields.Integer(strict=False, validate=validate.Range(min=0, max=253402300799))
    id = fields.String()
    ip = fields.String()
    userAgent = fields.String()  # noqa: N815 (Umami's name)


class SendSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=validate.OneOf(TYPES))
    payload = fields.Nested(PayloadSchema, required=True)


def umami_error(status: int, message: str, rest: dict[str, Any]) -> dict[str, Any]:
    code = CODES.get(status) or HTTPStatus(status).phrase.lower().replace(" ", "-")
    return {"error": {"message": message, "code": code, "status": status, **rest}}


def umami_event(site_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Our event body for an Umami event payload."""
    url, path = page_address(payload.get("url"), payload.get("hostname"))
    timestamp = payload.get("timestamp")
    return present(
        site_id=site_id,
        event_type=payload.get("name") or PAGE_VIEW,
        timestamp=now_iso() if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(),
        url=url,
        path=path,
        referrer=payload.get("referrer"),
        title=payload.get("title"),
        screen=payload.get("screen"),
        language=payload.get("language"),
        props=payload.get("data"),
        user_id=payload.get("id"),
        ip=payload.get("ip"),
        user_agent=payload.get("userAgent"),
    )


def page_address(url: str | None, hostname: str | None) -> tuple[str | None, str | None]:
    """The page's URL and path: Umami sends a path and the host apart (its tracker), or a URL."""
    if url and url_path(url):
        return url, url_path(url)
    if not url or not url.startswith("/"):
        return None, None
    # Read as Umami reads a path: against the host, or a placeholder one without it.
    return (f"https://{hostname}{url}" if hostname else None), url_path(
        f"https://{hostname or 'localhost'}{url}"
    )


class UmamiErrorDetailSchema(AnswerSchema):
    message = fields.String(required=True)
    code = fields.String(required=True)
    status = fields.Integer(required=True)


class UmamiErrorSchema(AnswerSchema):
    """Umami's error body."""

    error = fields.Nested(UmamiErrorDetailSchema, required=True)


class UmamiAnsweredSchema(AnswerSchema):
    ok = fields.Boolean(required=True)


OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/api/send": {
        "post": {
            "summary": "Umami's collection endpoint (docs/dropin.md)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": SendSchema}}},
            "responses": {
                200: json_response(UmamiAnsweredSchema, "Queued, or (identify, performance) answered"),
                **{status: json_response(UmamiErrorSchema, HTTPStatus(status).phrase) for status in ERRORS},
            },
        }
    }
}
