"""Turn every failure a client can cause or see into the contract's JSON error body."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from kombu.exceptions import OperationalError
from marshmallow import ValidationError
from pymongo.errors import PyMongoError
from redis.exceptions import OutOfMemoryError, RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse

from app.queue.transport import PublishOutcomeUnknownError

# marshmallow's message for a missing field; schemas report a null the same way.
MISSING_MESSAGE = "Missing data for required field."


def missing_fields(messages: dict[str, Any]) -> list[str]:
    """The fields a validation error reports as missing, in schema order."""
    return [name for name, errors in messages.items() if errors == [MISSING_MESSAGE]]


def error_response(status: int, message: str, errors: dict[str, Any] | None = None) -> Response:
    """The contract's error body: `status`, `message` and, where fields are at fault, `errors`."""
    body: dict[str, Any] = {"status": "error", "message": message}
    if errors:
        body["errors"] = errors
    response = jsonify(body)
    response.status_code = status
    return response


def validation_message(messages: dict[str, Any]) -> str:
    missing = missing_fields(messages)
    if missing:
        return f"Missing required fields: {', '.join(missing)}"
    return f"Invalid fields: {', '.join(messages)}"


def handle_validation_error(error: ValidationError) -> Response:
    messages = error.normalized_messages()
    return error_response(400, validation_message(messages), messages)


def handle_http_exception(error: HTTPException) -> WerkzeugResponse:
    if isinstance(error.response, WerkzeugResponse):  # abort(error_response(...)): already shaped
        return error.response
    response = error.get_response()
    body: dict[str, Any] = {"status": "error", "message": error.description or error.name}
    response.set_data(jsonify(body).get_data())
    response.content_type = "application/json"
    return response


# Seconds a client should wait before sending again an event the queue could not take: a
# Redis restarting or answering again comes back within seconds; a backlog drains slower.
OUTAGE_RETRY_AFTER_SECONDS = 2
OVERLOAD_RETRY_AFTER_SECONDS = 10


def service_unavailable(message: str, retry_after: int) -> Response:
    response = error_response(503, message)
    response.headers["Retry-After"] = str(retry_after)
    return response


def handle_queue_unavailable(error: Exception) -> Response:
    if isinstance(error.__cause__, OutOfMemoryError):  # what Celery's publish wraps it in
        return handle_queue_full(error)
    return service_unavailable(
        "Event queue unavailable: the event was not accepted, please retry", OUTAGE_RETRY_AFTER_SECONDS
    )


def outcome_unknown(ids: dict[str, Any]) -> Response:
    """The enqueue was sent but Redis did not confirm it in time: the events may be queued or
    not. Not a 503, which promises they were not: a retry must carry the same event ids,
    which `ids` gives the body, so that events queued after all are stored once."""
    response = jsonify(
        status="error",
        message=(
            "Event queue did not confirm in time: the event may or may not have been accepted; "
            "send it again only with the same event_id"
        ),
        **ids,
    )
    response.status_code = 504
    response.headers["Retry-After"] = str(OUTAGE_RETRY_AFTER_SECONDS)
    return response


def handle_outcome_unknown(_: Exception) -> Response:
    """An unknown outcome the view could not name the events of: still never a 503 or a 500."""
    return outcome_unknown({})


def handle_queue_overloaded(error: Exception) -> Response:
    return service_unavailable(str(error), OVERLOAD_RETRY_AFTER_SECONDS)


def handle_queue_full(_: Exception) -> Response:
    """Redis at its maxmemory refuses writes (noeviction): nothing was queued."""
    return service_unavailable(
        "Event queue full (Redis is out of memory): the event was not accepted, please retry later",
        OVERLOAD_RETRY_AFTER_SECONDS,
    )


def handle_registry_unavailable(_: Exception) -> Response:
    response = error_response(503, "Site registry unavailable: the event was not accepted, please retry")
    response.headers["Retry-After"] = "1"
    return response


def handle_redis_unavailable(_: Exception) -> Response:
    return error_response(503, "Redis unavailable, please retry")


def handle_database_unavailable(_: Exception) -> Response:
    return error_response(503, "Database unavailable, please retry")


def register_errorhandlers(app: Flask) -> None:
    app.register_error_handler(ValidationError, handle_validation_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_queue_unavailable)
    app.register_error_handler(PublishOutcomeUnknownError, handle_outcome_unknown)
    app.register_error_handler(RedisError, handle_redis_unavailable)
    app.register_error_handler(OutOfMemoryError, handle_queue_full)
    app.register_error_handler(PyMongoError, handle_database_unavailable)
