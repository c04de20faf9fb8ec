"""`POST /api/event`: Plausible's Events API, so that a site running Plausible's script or its
npm tracker switches by pointing it here.

A request names the site by domain (`d`, several comma-separated, else the host of `u`); the
site is the registered one listing that domain, a leading `www.` dropped on both sides (with
`AUTH_MODE=open`, the domain itself is the site id). Each event maps onto ours: `n` is the
event type (`pageview` is our `page_view`), `u` the url (its path, with the fragment when
`h` is 1), `r` the referrer, `p` (or `props`, an object or a JSON text) the props, with
Plausible's filter of empty and nested values. The time is the server's: Plausible's clients
send none, and no event id either, so one is drawn here.

The visitor is derived as for `/event` (app/ingestion/derivation.py), and a bot's event is
dropped and counted as there.

Plausible's answers are kept: 202 `ok`, also for what it drops without an error (an unknown
domain, a page not on the site's domains, a bot), with `X-Plausible-Dropped` counting those; 400
with `{"errors": {field: [message]}}` for a request it cannot use. Engagement events (time on
page and scroll depth) are answered alike and not stored: the store keeps no engagement yet.
What the service says before any event is read (413, 415, 429, 503) is ours, as for `/event`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urlsplit

from flask import Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from app.access.origins import request_gate
from app.access.registry import SiteRegistry, without_www
from app.ingestion import outcomes
from app.ingestion.bodies import json_body
from app.ingestion.derivation import MAX_USER_AGENT, request_visitor
from app.ingestion.group_commit import OutcomeUnknownError
from app.ingestion.schemas import BotEventError, to_message
from app.ingestion.views import accepted_window, bp, queue_events
from app.web.errors import outcome_unknown

# Plausible's event names that are not ours, and those it sends that are not events.
EVENT_TYPES = {"pageview": "page_view"}
NOT_STORED = frozenset({"engagement"})
# Our fields as Plausible's errors name them.
PLAUSIBLE_FIELDS = {"event_type": "event_name", "path": "pathname"}
DROPPED_HEADER = "X-Plausible-Dropped"
# What an event's `user_agent` holds (app/ingestion/schemas.py): a longer header is cut.
# A request names at most this many domains: each becomes an event of its own.
MAX_DOMAINS = 10


class PlausibleError(Exception):
    """A request Plausible answers with a 400 and `{"errors": {field: [message]}}`."""

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


@bp.post("/api/event")
def plausible_event() -> ResponseReturnValue:
    try:
        events = plausible_events(read_request())
        messages, bots = queue_messages(event for event in events if event is not None)
    except PlausibleError as error:
        return plausible_errors(error.errors)
    except ValidationError as error:
        return plausible_errors(plausible_names(error.normalized_messages()))
    gate = request_gate()
    admitted = [message for message in messages if gate is None or gate(message["site_id"]) is None]
    admitted_bots = [bot for bot in bots if gate is None or gate(bot.message["site_id"]) is None]
    outcomes.refused(len(messages) + len(bots) - len(admitted) - len(admitted_bots), outcomes.SITE)
    try:  # bots' events charged to the same limits as the others: a bot learns nothing
        queue_events(admitted, admitted_bots)
    except OutcomeUnknownError:
        return outcome_unknown({"event_ids": [message["event_id"] for message in admitted]})
    return accepted(dropped=len(events) - len(admitted))


def queue_messages(events: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[BotEventError]]:
    """The queue messages of valid events, with the request's visitor, and the bots' events;
    raises ValidationError for an invalid one."""
    derive, window = request_visitor().derive, accepted_window()
    messages, bots = [], []
    for event in events:
        try:
            messages.append(to_message(event, window, derive))
        except BotEventError as bot:
            bots.append(bot)
    return messages, bots


def read_request() -> dict[str, Any]:
    try:
        body = json_body()
    except BadRequest:
        body = None
    if not isinstance(body, dict):
        raise PlausibleError({"request": ["Unable to parse request body as json"]})
    return body


def plausible_events(body: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Our events for a Plausible request, one per domain it names (None where no site has
    that domain); none for what is not stored."""
    name = body.get("n", body.get("name"))
    url = body.get("u", body.get("url"))
    errors: dict[str, list[str]] = {}
    if not isinstance(name, str) or not name.strip():
        errors["event_name"] = ["can't be blank"]
        name = ""
    if not isinstance(url, str):
        errors["url"] = ["is required" if url is None else "must be a string"]
        url = ""
    domains = named_domains(body.get("d", body.get("domain")), url)
    if not domains:
        errors["domain"] = ["can't be blank"]
    if errors:
        raise PlausibleError(errors)
    if name in NOT_STORED:
        return []
    registry: SiteRegistry | None = current_app.extensions.get("site_registry")
    sites = (domain if registry is None else registry.site_for_domain(domain) for domain in domains)
    event_type = EVENT_TYPES.get(name, name)
    return [None if site_id is None else page_event(body, site_id, event_type, url) for site_id in sites]


def named_domains(value: Any, url: str) -> list[str]:
    """The domains a request names (`d`, comma-separated), else its url's host."""
    if value is None:
        value = split_url(url).hostname or ""
    if not isinstance(value, str):
        return []
    return [without_www(domain.strip()) for domain in value.split(",") if domain.strip()][:MAX_DOMAINS]


def page_event(body: dict[str, Any], site_id: str, event_type: str, url: str) -> dict[str, Any]:
    parts = split_url(url)
    path = parts.path or "/"
    if body.get("h", body.get("hashMode")) == 1 and parts.fragment:
        path = f"{path}#{parts.fragment}"
    event = {
        "site_id": site_id,
        "event_type": event_type,
        "url": url,
        "path": path,
        "referrer": body.get("r", body.get("referrer")),
        "props": plausible_props(body),
        "timestamp": datetime.now(UTC).isoformat(),
        # Plausible's server-side senders name the visitor by these two headers; believed as
        # a body's `ip` and `user_agent` are, from a server with the site's key (or any, with
        # AUTH_MODE=open), never from a page (app/ingestion/derivation.py).
        "ip": forwarded_address(),
        "user_agent": request.headers.get("User-Agent", "")[:MAX_USER_AGENT] or None,
    }
    return {key: value for key, value in event.items() if value is not None}


def forwarded_address() -> str | None:
    """The first address of `X-Forwarded-For`, if it is one."""
    first = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return None


def split_url(url: str) -> SplitResult:
    """The parts of `url`; none of an unreadable one (validation then refuses it)."""
    try:
        return urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        return urlsplit("")


def plausible_props(body: dict[str, Any]) -> dict[str, Any] | None:
    """The props as Plausible reads them: an object, or a JSON text of one, without the
    empty, null and nested values it leaves out; None when there are none."""
    raw = next((body[key] for key in ("m", "meta", "p", "props") if body.get(key) is not None), None)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict):
        return None
    props = {key: value for key, value in raw.items() if value not in ("", None) and not nested(value)}
    return props or None


def nested(value: Any) -> bool:
    return isinstance(value, list | dict)


def plausible_names(messages: dict[str, Any]) -> dict[str, Any]:
    """Our validation messages under the names Plausible's errors use."""
    return {PLAUSIBLE_FIELDS.get(field, field): problem for field, problem in messages.items()}


def plausible_errors(errors: dict[str, Any]) -> Response:
    response = jsonify(errors=errors)
    response.status_code = 400
    return response


def accepted(dropped: int) -> Response:
    response = Response("ok", status=202, mimetype="text/plain")
    if dropped:
        response.headers[DROPPED_HEADER] = str(dropped)
    return response
