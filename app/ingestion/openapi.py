"""The ingestion service's OpenAPI document: its routes, from the schemas that validate them."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.ingestion import segment_body, umami_body
from app.ingestion.schemas import MAX_BATCH_EVENTS, EventSchema
from app.web.openapi import (
    AnswerSchema,
    build_document,
    error_responses,
    health_operation,
    json_response,
    metrics_operation,
)

# What a client's event can meet besides a validation error (403 and 429 come with
# AUTH_MODE=keys and the rate limits; 504: the queue did not confirm in time, docs/api.md).
EVENT_ERRORS = (400, 403, 413, 415, 429, 503, 504)
TEXT = {"type": "string"}
EVENT_LIST = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/Event"},
    "minItems": 1,
    "maxItems": MAX_BATCH_EVENTS,
}


def errors_field(description: str) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(), values=fields.Dict(), required=True, metadata={"description": description}
    )


class AcceptedSchema(AnswerSchema):
    status = fields.String(required=True, validate=validate.OneOf(["accepted"]))


class BatchAcceptedSchema(AcceptedSchema):
    accepted = fields.Integer(required=True, metadata={"description": "Events queued."})
    rejected = fields.Integer(required=True, metadata={"description": "Events refused."})
    errors = errors_field("The refused events' validation messages, by index in the batch.")


class ImportedSchema(AcceptedSchema):
    sent = fields.Integer(required=True, metadata={"description": "Events sent to the queue."})
    refused = fields.Integer(required=True, metadata={"description": "Lines refused."})
    errors = errors_field("The first refused lines' messages, by line (or item) number from 1.")


class PlausibleErrorsSchema(AnswerSchema):
    """Plausible's own 400 body, which its clients expect."""

    errors = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={"description": "Messages by field, under Plausible's names (event_name, url, domain)."},
    )


# Plausible's Events API body (docs/tracker.md): each field also goes by its long name.
PLAUSIBLE_SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}], "nullable": True}
PLAUSIBLE_EVENT = {
    "type": "object",
    "properties": {
        "n": {"type": "string", "description": "The event name; `pageview` is a page view (name)"},
        "u": {"type": "string", "format": "uri", "description": "The page's URL (url)"},
        "d": {"type": "string", "description": "The site's domain, or several comma-separated (domain)"},
        "r": {"type": "string", "nullable": True, "description": "The referrer (referrer)"},
        "p": {
            "oneOf": [{"type": "object", "additionalProperties": PLAUSIBLE_SCALAR}, {"type": "string"}],
            "description": "Custom properties, or a JSON text of them (props)",
        },
        "h": {"type": "integer", "description": "1: hash-based routing, the fragment is part of the path"},
    },
}


def json_body(schema: dict[str, Any] | type[Schema]) -> dict[str, Any]:
    # text/plain (what sendBeacon sends) and gzip are accepted too; see docs/api.md.
    return {"required": True, "content": {"application/json": {"schema": schema}}}


PATHS: dict[str, dict[str, Any]] = {
    "/event": {
        "post": {
            "summary": "Accept one event",
            "requestBody": json_body(EventSchema),
            "responses": {200: json_response(AcceptedSchema, "Queued"), **error_responses(*EVENT_ERRORS)},
        }
    },
    "/events": {
        "post": {
            "summary": f"Accept up to {MAX_BATCH_EVENTS} events: valid ones are queued, the others reported",
            "requestBody": json_body(
                {
                    "oneOf": [
                        EVENT_LIST,
                        {"type": "object", "required": ["events"], "properties": {"events": EVENT_LIST}},
                    ]
                }
            ),
            "responses": {
                200: json_response(BatchAcceptedSchema, "The valid events queued"),
                **error_responses(*EVENT_ERRORS),
            },
        }
    },
    "/events/import": {
        "post": {
            "summary": "An operator's events of any age, NDJSON or a JSON array, through the queue",
            "parameters": [{"in": "query", "name": "site_id", "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                },
            },
            "responses": {
                200: json_response(ImportedSchema, "The valid events queued, the others reported"),
                **error_responses(401, *EVENT_ERRORS),
            },
        }
    },
    "/metrics": metrics_operation("requests, and events accepted and refused"),
    "/health": health_operation("ingestion", "the event queue (Redis)"),
    "/api/event": {
        "post": {
            "summary": "Plausible's Events API: its events mapped onto ours, with its answers",
            "requestBody": json_body(PLAUSIBLE_EVENT),
            "responses": {
                202: {
                    "description": "Taken (or dropped: X-Plausible-Dropped)",
                    "content": {"text/plain": {"schema": TEXT}},
                },
                400: json_response(PlausibleErrorsSchema, "Plausible's refusal"),
                **error_responses(413, 415, 429, 503, 504),
            },
        }
    },
    "/tracker.js": {
        "get": {
            "summary": "The page tag (docs/tracker.md): gzip when accepted, an ETag, a day of caching",
            "responses": {
                200: {"description": "The tag", "content": {"text/javascript": {"schema": TEXT}}},
                304: {"description": "The copy named by If-None-Match is current"},
            },
        }
    },
    # Other products' endpoints, in their own shapes (docs/dropin.md).
    **umami_body.OPENAPI_PATHS,
    **segment_body.OPENAPI_PATHS,
}


def document() -> dict[str, Any]:
    return build_document(
        "Analytics ingestion",
        "Takes events from browsers and servers and queues them; answers once they are durably queued.",
        PATHS,
        schemas={"Event": EventSchema},
    )
