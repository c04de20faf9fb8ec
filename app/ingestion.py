"""The ingestion blueprint: validate an event, put it on the queue, answer at once."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError
from werkzeug.exceptions import BadRequest, ServiceUnavailable, UnsupportedMediaType

from app.extensions import redis_store
from app.schemas import event_schema
from tasks.persist import enqueue_events

bp = Blueprint("ingestion", __name__)


def json_object_body() -> dict[str, Any]:
    """The request body as a JSON object, or the contract's 415 / 400 / 413."""
    if not request.is_json:
        raise UnsupportedMediaType("Content-Type must be application/json")
    try:
        body = json.loads(request.get_data(cache=False))
    except ValueError:
        raise BadRequest("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


@bp.post("/event")
def post_event() -> Response:
    event = event_schema.load(json_object_body())
    enqueue_events([event_schema.dump(event)])
    return jsonify(status="accepted")


@bp.get("/health")
def health() -> Response:
    try:
        redis_store.client.ping()
    except RedisError:
        raise ServiceUnavailable("Event queue (Redis) is unreachable") from None
    return jsonify(status="ok", service="ingestion-service")
