"""`POST /api/send`: Umami's collection endpoint, so that Umami's tracker script and SDKs
(`@umami/node`) need only a new host. Umami's body is `{type, payload: {website, hostname,
url, referrer, title, screen, language, name, data, timestamp, id}}`; the site is the one
registered with the website id (`flask site add SITE --umami-id UUID`), and in AUTH_MODE=open
the website id itself.

Mapped onto our event: `name` is the event type (none: `page_view`), `data` its props,
`id` (Umami's distinct id) its user id, `timestamp` (Unix seconds) its time or else now,
`url` (a path, or a URL) with `hostname` its URL and path. An `identify` or `performance`
body is answered as Umami answers it and stores nothing: we keep no session data or web
vitals. Umami's answers: 200 on success (no session token: visits are assigned once stored,
so there is none to give), and `{"error": {message, code, status}}` for errors, `400 Website
not found.` for an unknown website id among them.
"""

from __future__ import annotations

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue

from app.access.origins import request_gate
from app.access.registry import SiteRegistry
from app.ingestion import outcomes
from app.ingestion.bodies import json_body
from app.ingestion.derivation import request_visitor
from app.ingestion.dropin import dropin_blueprint
from app.ingestion.schemas import BotEventError, to_message
from app.ingestion.umami_body import EVENT, SendSchema, umami_error, umami_event
from app.ingestion.views import accepted_window, queue_events

bp = dropin_blueprint("umami", umami_error)
send_schema = SendSchema()


@bp.post("/api/send")
def send() -> ResponseReturnValue:
    body = send_schema.load(json_body())
    payload = body["payload"]
    site_id = website_site(str(payload["website"]))
    if site_id is None:
        outcomes.refused(1, outcomes.SITE)
        return jsonify(umami_error(400, "Website not found.", {})), 400
    gate = request_gate()
    refusal = gate(site_id) if gate else None
    if refusal:
        outcomes.refused(1, outcomes.SITE)
        return jsonify(umami_error(403, refusal, {})), 403
    if body["type"] == EVENT:
        try:
            message = to_message(umami_event(site_id, payload), accepted_window(), request_visitor().derive)
        except BotEventError as bot:  # answered as any event, and charged to the same limits
            queue_events([], [bot])
        else:
            queue_events([message])
    return jsonify(ok=True)


def website_site(website: str) -> str | None:
    """The site registered with this Umami website id; in AUTH_MODE=open the id itself."""
    registry: SiteRegistry | None = current_app.extensions.get("site_registry")
    return website if registry is None else registry.site_by_umami_id(website)
