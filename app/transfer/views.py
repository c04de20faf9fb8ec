"""`POST /events/import` on the ingestion service: an operator's events, of any age, through
the queue (see app/transfer/imports.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import UnsupportedMediaType

from app.access.guard import request_key
from app.extensions import redis_store
from app.ingestion.backpressure import QueueOverloadedError
from app.ingestion.bodies import decode_content
from app.ingestion.body_reader import read_body
from app.ingestion.rate_limits import count_refused_requests, refuse_addresses_over_their_rate
from app.queue.publish import enqueue_events
from app.queue.transport import PublishOutcomeUnknownError
from app.settings import current_settings
from app.transfer import imports
from app.web.errors import error_response, handle_queue_overloaded, handle_queue_unavailable

# The largest import body, in bytes, before and after gzip: some tens of thousands of events.
MAX_IMPORT_BYTES = 16 * 1024 * 1024
MEDIA_TYPES = ("application/x-ndjson", "application/json", "text/plain")

bp = Blueprint("imports", __name__)
# Ingestion's per-address limits: an address over its rate is refused, refusals count.
bp.before_request(refuse_addresses_over_their_rate)
bp.after_request(count_refused_requests)


def operator_refusal() -> Response | None:
    """With AUTH_MODE=keys, the answer to a request without an operator key (None: it has one)."""
    if current_settings().auth_mode == "open":
        return None
    key = request_key("operator key")
    if isinstance(key, Response):
        return key
    if key.site_id is not None:
        return error_response(403, "Only an operator key imports events")
    return None


@bp.post("/events/import")
def import_events() -> ResponseReturnValue:
    """NDJSON or a JSON array of events, each checked as a client's event but for its age, sent
    through the queue; `?site_id=` imports every event into that site. Refused lines are
    reported by line (or item) number."""
    refusal = operator_refusal()
    if refusal is not None:
        return refusal
    if request.mimetype not in MEDIA_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(MEDIA_TYPES)}")
    data = read_body(MAX_IMPORT_BYTES)
    if request.content_encoding:
        data = decode_content(data, request.content_encoding, MAX_IMPORT_BYTES)

    def send(messages: list[dict[str, Any]]) -> None:
        reason = imports.queue_overload(redis_store.client, current_settings())
        if reason:
            raise QueueOverloadedError(reason)
        enqueue_events(messages)

    try:
        report = imports.import_now(imports.body_items(data), send, request.args.get("site_id") or None)
    except imports.ImportStoppedError as stopped:
        return stopped_answer(stopped)
    if not report.sent:
        return error_response(400, "No valid event to import", report.body()["errors"])
    return jsonify(status="accepted", **report.body())


def stopped_answer(stopped: imports.ImportStoppedError) -> Response:
    """The queue's refusal, saying what was sent before it: sending the body again is safe."""
    cause = stopped.__cause__
    if isinstance(cause, QueueOverloadedError):
        response = handle_queue_overloaded(cause)
    elif isinstance(cause, PublishOutcomeUnknownError):
        response = error_response(504, "Event queue did not confirm in time")
    else:
        response = handle_queue_unavailable(cause if isinstance(cause, Exception) else Exception())
    body = response.get_json()
    body["message"] += (
        f"; {stopped.report.sent} events were sent (through line {stopped.report.sent_through_line}): "
        "send the same body again, events sent already count once"
    )
    response.set_data(jsonify(body).get_data())
    return response
