"""What the drop-in endpoints for other products' clients (Umami's `/api/send`, Segment's
`/v1/*`) share with `POST /event`: each is a blueprint of its own that maps its format onto
our event bodies, then validates, admits and queues them exactly as `POST /event` does
(rate limits, back-pressure, the site gate), and answers in its product's own shapes.

Errors are raised and handled as everywhere in ingestion; a blueprint's `reshape` then
rewrites the contract's error body (`{"status": "error", "message", "errors"}`) into its
product's, so the clients' error handling, which reads those shapes, keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, json

from app.access.registry import RegistryUnavailableError
from app.ingestion.backpressure import QueueOverloadedError
from app.ingestion.group_commit import CommitTimeoutError
from app.ingestion.rate_limits import limit_rates
from app.web.errors import handle_queue_overloaded, handle_queue_unavailable, handle_registry_unavailable

# A product's error body, from the status, the contract's message and the rest of its body
# (`errors` by field, event ids of an unknown outcome).
Reshape = Callable[[int, str, dict[str, Any]], dict[str, Any]]


def dropin_blueprint(name: str, reshape: Reshape) -> Blueprint:
    """A blueprint for one product's endpoints, limited and guarded as ingestion's own, whose
    error answers `reshape` rewrites."""
    bp = Blueprint(name, __name__)

    # Registered first, so that it runs last (Flask runs them in reverse): after the rate
    # limits' hook, which may turn a refusal into a 429 of its own.
    @bp.after_request
    def reshape_errors(response: Response) -> Response:
        body = response.get_json(silent=True) if response.status_code >= 400 else None
        if isinstance(body, dict) and body.get("status") == "error":
            rest = {key: value for key, value in body.items() if key not in ("status", "message")}
            response.set_data(json.dumps(reshape(response.status_code, body.get("message", ""), rest)))
        return response

    limit_rates(bp)
    bp.register_error_handler(CommitTimeoutError, handle_queue_unavailable)
    bp.register_error_handler(RegistryUnavailableError, handle_registry_unavailable)
    bp.register_error_handler(QueueOverloadedError, handle_queue_overloaded)
    return bp


def present(**fields: Any) -> dict[str, Any]:
    """The fields that have a value: what a client left out stays out of our event, where the
    schema's rules for a missing field apply."""
    return {key: value for key, value in fields.items() if value is not None}


def now_iso() -> str:
    """The server's time, for events whose client sends none (Umami's often do not)."""
    return datetime.now(UTC).isoformat()


def url_path(url: Any) -> str | None:
    """The path of an http(s) URL (`/` for none), as `POST /event` takes `path` from `url`;
    None for anything else, which the schema then refuses or ignores by its own rules."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return (parts.path or "/") if parts.scheme in ("http", "https") else None
