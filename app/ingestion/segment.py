"""`POST /v1/batch`, `/v1/track` and `/v1/page`: Segment's tracking API, so that Segment's
SDKs (`segment-analytics-python` and the others) need only a new host. The write key is one
of the site's server keys (`flask key create SITE --server`), sent as Segment's SDKs send it:
the user name of HTTP basic auth (or the body's `writeKey`); it names the site. With
AUTH_MODE=open the write key itself is the site id.

Segment's answers: `200 {"success": true}`, and `{"code", "message"}` errors: `401` for a
missing or unknown write key, `400` for a body that is not JSON or whose messages are all
invalid. A batch whose messages are partly invalid stores the valid ones and answers 200
with the others' errors by index (`rejected`, `errors`). How messages map onto our events:
app/ingestion/segment_body.py.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest

from app.access.keys import hash_key
from app.access.origins import Sender, page_host, request_gate
from app.access.registry import SiteRegistry
from app.ingestion.bodies import json_body
from app.ingestion.derivation import request_visitor
from app.ingestion.dropin import dropin_blueprint
from app.ingestion.schemas import load_batch
from app.ingestion.segment_body import PAGE, TRACK, as_object, segment_error, segment_event
from app.ingestion.views import accepted_window, count_refusals, queue_events
from app.settings import current_settings

bp = dropin_blueprint("segment", segment_error)


@bp.post("/v1/batch")
def batch() -> ResponseReturnValue:
    request.max_content_length = current_settings().max_batch_bytes
    body = as_object(json_body())
    messages = body.get("batch")
    if not isinstance(messages, list):
        raise BadRequest('The body must be {"batch": [messages]}')
    # A batch's own `context` is each of its messages' (theirs wins where both say).
    shared = as_object(body.get("context"))
    return store(
        body,
        [
            (
                {**message, "context": {**shared, **as_object(message.get("context"))}},
                str(message.get("type")),
            )
            for message in map(as_object, messages)
        ],
    )


@bp.post("/v1/track")
def track() -> ResponseReturnValue:
    body = as_object(json_body())
    return store(body, [(body, TRACK)])


@bp.post("/v1/page")
def page() -> ResponseReturnValue:
    body = as_object(json_body())
    return store(body, [(body, PAGE)])


def store(body: dict[str, Any], messages: list[tuple[dict[str, Any], str]]) -> ResponseReturnValue:
    """Queue the messages' events for the write key's site; answer as Segment does."""
    site_id = write_key_site(body)
    if site_id is None:
        return jsonify(
            segment_error(401, "Missing or unknown write key: send a server key of the site", {})
        ), 401
    indexed = [
        (index, segment_event(site_id, message, kind)) for index, (message, kind) in enumerate(messages)
    ]
    events = [(index, event) for index, event in indexed if event is not None]
    if not events:
        return jsonify(success=True)
    loaded = load_batch(
        {"events": [event for _, event in events]},
        accepted_window(),
        request_gate(),
        request_visitor().derive,
    )
    count_refusals(loaded)
    # Errors by the message's index in the request, not among the events it holds.
    errors = {str(events[int(position)][0]): messages for position, messages in loaded.errors.items()}
    if not loaded.messages and not loaded.dropped:
        refusal = segment_error(400, "No valid message in the request: see errors", {"errors": errors})
        return jsonify(refusal), 400
    # Bots' messages are answered as any, and charged to the same limits: a bot learns nothing.
    queue_events(loaded.messages, list(loaded.dropped.values()))
    return jsonify(success=True, **({"rejected": len(errors), "errors": errors} if errors else {}))


def write_key(body: dict[str, Any]) -> str | None:
    """The write key: basic auth's user name, as Segment's SDKs send it, else the body's."""
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return auth.username
    key = body.get("writeKey")
    return key if isinstance(key, str) and key else None


def write_key_site(body: dict[str, Any]) -> str | None:
    """The site the write key is a server key of (AUTH_MODE=open: the key itself), or None.
    The request's sender is then a server presenting that key, for every later check."""
    key = write_key(body)
    if key is None:
        return None
    g.sender = Sender(page_host(request.headers.get("Origin"), request.headers.get("Referer")), hash_key(key))
    registry: SiteRegistry | None = current_app.extensions.get("site_registry")
    return key if registry is None else registry.site_by_server_key(g.sender.key_hash)
