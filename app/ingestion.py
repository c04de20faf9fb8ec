"""The ingestion blueprint: validate events, put them on the queue, answer at once."""

from __future__ import annotations

import os
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_cors import CORS
from redis.exceptions import RedisError
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from app.bodies import json_body
from app.errors import error_response
from app.extensions import redis_store
from app.schemas import event_schema, load_batch
from tasks.persist import enqueue_events

# PENDING MOVE TO Settings (app/config.py) as `cors_allowed_origins` (CORS_ALLOWED_ORIGINS):
# "*" or a comma-separated list of exact origins such as "https://example.com".
CORS_ALLOWED_ORIGINS = os.environ.get("CORS_ALLOWED_ORIGINS", "*")
# PENDING MOVE TO Settings (app/config.py) as `max_batch_bytes` (MAX_BATCH_BYTES).
MAX_BATCH_BYTES = 1024 * 1024
# How long a browser may reuse a preflight answer (browsers cap it lower, Chrome at 2 h).
CORS_MAX_AGE_SECONDS = 86400

bp = Blueprint("ingestion", __name__)


@bp.record_once
def init_cors(state: BlueprintSetupState) -> None:
    """Let web pages of the allowed origins post events, preflight included."""
    app = state.app
    assert isinstance(app, Flask)  # BlueprintSetupState types it as the sansio App
    CORS(
        app,
        resources=["/event", "/events"],
        origins=allowed_origins(CORS_ALLOWED_ORIGINS),
        methods=["POST"],
        allow_headers=["Content-Type", "Content-Encoding"],
        max_age=CORS_MAX_AGE_SECONDS,
        # With "*", answer "*" rather than echo each origin: one answer fits every page.
        send_wildcard=True,
        # Server-side senders carry no Origin: their responses need no CORS headers.
        always_send=False,
        # Handled errors already pass through after_request; unhandled ones are 500s.
        intercept_exceptions=False,
    )


def allowed_origins(setting: str) -> str | list[str]:
    """`*`, or the listed origins of a comma-separated setting."""
    origins = [origin.strip() for origin in setting.split(",") if origin.strip()]
    return "*" if "*" in origins else origins


@bp.post("/event")
def post_event() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    event = event_schema.load(body)
    enqueue_events([event_schema.dump(event)])
    return jsonify(status="accepted")


@bp.post("/events")
def post_events() -> ResponseReturnValue:
    """A batch: valid events are accepted with one enqueue, invalid ones reported by index."""
    request.max_content_length = MAX_BATCH_BYTES
    batch = load_batch(batch_envelope(json_body()))
    if not batch.messages:
        return error_response(400, "No valid event in the batch", batch.errors)
    enqueue_events(batch.messages)
    return jsonify(
        status="accepted", accepted=len(batch.messages), rejected=len(batch.errors), errors=batch.errors
    )


def batch_envelope(body: Any) -> dict[str, Any]:
    """A bare JSON array of events is the same as `{"events": [...]}`."""
    if isinstance(body, list):
        return {"events": body}
    if not isinstance(body, dict):
        raise BadRequest('Request body must be a JSON array of events or {"events": [...]}')
    return body


@bp.get("/health")
def health() -> Response:
    try:
        redis_store.client.ping()
    except RedisError:
        raise ServiceUnavailable("Event queue (Redis) is unreachable") from None
    return jsonify(status="ok", service="ingestion-service")
