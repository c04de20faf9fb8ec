"""The ingestion blueprint: validate events, put them on the queue, answer at once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_cors import CORS
from redis.exceptions import RedisError
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from app.bodies import json_body
from app.config import current_settings
from app.errors import error_response
from app.extensions import redis_store
from app.group_commit import GroupCommitter
from app.schemas import MAX_BATCH_EVENTS, load_batch, to_message
from tasks.persist import enqueue_events

# A request waits at most this many broker timeouts for its batch: one enqueue (bounded
# by the broker timeout and its short publish retries) plus the one queued ahead of it.
COMMIT_TIMEOUT_FACTOR = 5
# How long a browser may reuse a preflight answer (browsers cap it lower, Chrome at 2 h).
CORS_MAX_AGE_SECONDS = 86400

bp = Blueprint("ingestion", __name__)
# One per process: concurrent requests share an enqueue (see app/group_commit.py).
committer = GroupCommitter(enqueue_events, max_batch_events=MAX_BATCH_EVENTS)


def queue_events(messages: list[dict[str, Any]]) -> None:
    """Return once the events are in the broker; raise if they could not be queued."""
    committer.submit(messages, timeout=COMMIT_TIMEOUT_FACTOR * current_settings().broker_timeout_seconds)


@bp.record_once
def init_cors(state: BlueprintSetupState) -> None:
    """Let web pages of the allowed origins post events, preflight included."""
    app = state.app
    assert isinstance(app, Flask)  # BlueprintSetupState types it as the sansio App
    CORS(
        app,
        resources=["/event", "/events"],
        origins=allowed_origins(app.extensions["settings"].cors_allowed_origins),
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
    queue_events([to_message(body)])
    return jsonify(status="accepted")


@bp.post("/events")
def post_events() -> ResponseReturnValue:
    """A batch: valid events are accepted with one enqueue, invalid ones reported by index."""
    request.max_content_length = current_settings().max_batch_bytes
    batch = load_batch(batch_envelope(json_body()))
    if not batch.messages:
        return error_response(400, "No valid event in the batch", batch.errors)
    queue_events(batch.messages)
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
