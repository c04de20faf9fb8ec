"""Each service's OpenAPI document, built from its marshmallow schemas and served at
`GET /openapi.json`, so that clients and the fuzz tests read the contract from the service."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response, current_app, jsonify
from marshmallow import INCLUDE, Schema, fields, validate

from app.access.guard import public

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1"
DOCUMENT_KEY = "openapi_document"


class AnswerSchema(Schema):
    """A response body: documented fields, and room for more (the contract extends answers,
    never renames their fields)."""

    class Meta:
        unknown = INCLUDE


class ErrorSchema(AnswerSchema):
    """The contract's error body, the same for every 4xx and 5xx of both services."""

    status = fields.String(required=True, validate=validate.OneOf(["error"]))
    message = fields.String(required=True, metadata={"description": "What went wrong, for a person."})
    errors = fields.Dict(
        keys=fields.String(),
        metadata={"description": "Only where fields are at fault: messages by field (or by index)."},
    )


class HealthSchema(AnswerSchema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))
    service = fields.String(required=True)


def error_responses(*statuses: int) -> dict[int, dict[str, Any]]:
    """The documented error answers of an operation, each with the contract's error body."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": ErrorSchema}},
        }
        for status in statuses
    }


def json_response(schema: type[Schema] | Schema | dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def health_operation(name: str, dependency: str) -> dict[str, Any]:
    """`GET /health`: 200 when `dependency` answers, else the 503 error."""
    return {
        "get": {
            "summary": f"Whether the {name} service and {dependency} answer",
            "responses": {200: json_response(HealthSchema, "Healthy"), **error_responses(503)},
        }
    }


def metrics_operation(what: str) -> dict[str, Any]:
    """`GET /metrics`: Prometheus text, for an operator's key (AUTH_MODE=keys)."""
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "get": {
            "summary": f"Prometheus metrics: {what} (an operator's key)",
            "responses": {
                200: {"description": "Prometheus text format", "content": text},
                **error_responses(401, 403),
            },
        }
    }


OPENAPI_OPERATION = {
    "get": {
        "summary": "This document",
        "responses": {200: json_response({"type": "object"}, "The OpenAPI document")},
    }
}


# Gunicorn answers these itself, before the application sees the request (a malformed request,
# a request line or header beyond its limits), in the same error body (app/web/server_errors.py).
SERVER_REFUSALS = (400, 414, 431)


def with_server_refusals(operations: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`operations` with gunicorn's refusals added to each one's responses."""
    return {
        method: {**operation, "responses": {**error_responses(*SERVER_REFUSALS), **operation["responses"]}}
        for method, operation in operations.items()
    }


def build_document(
    title: str,
    description: str,
    paths: Mapping[str, dict[str, Any]],
    schemas: Mapping[str, type[Schema]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI document of `paths` (path -> operations by method, as apispec takes them);
    `schemas` are components that operations may also name by `$ref`."""
    marshmallow = MarshmallowPlugin()
    spec = APISpec(
        title=title,
        version=API_VERSION,
        openapi_version=OPENAPI_VERSION,
        plugins=[marshmallow],
        info={"description": description},
    )
    with warnings.catch_warnings():
        # The event strings' two patterns (no control characters, no lone surrogates) are more
        # than OpenAPI can say of one string: the document shows the first.
        warnings.filterwarnings("ignore", "More than one regex validator", UserWarning)
        for name, schema in {"Error": ErrorSchema, **(schemas or {})}.items():
            spec.components.schema(name, schema=schema)
        for path, operations in {**paths, "/openapi.json": OPENAPI_OPERATION}.items():
            spec.path(path=path, operations=with_server_refusals(operations))
    return spec.to_dict()


def serve_document(bp: Blueprint, build: Callable[[], dict[str, Any]]) -> None:
    """Add `GET /openapi.json` to `bp`: the document `build()` gives, built once per app."""

    @bp.get("/openapi.json")
    @public  # the contract is no secret: clients read it before they hold a key
    def openapi_document() -> Response:
        if DOCUMENT_KEY not in current_app.extensions:
            current_app.extensions[DOCUMENT_KEY] = build()
        return jsonify(current_app.extensions[DOCUMENT_KEY])
