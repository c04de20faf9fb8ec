"""Reporting's check of read keys (`AUTH_MODE=keys`): every endpoint needs
`Authorization: Bearer <key>` unless its view is marked `@public`, so an endpoint added later
is closed until someone decides otherwise.

A site's key reads that site only (the `site_id` parameter, or for a view marked
`@site_in_body`, the JSON body's `site_id`); an operator key
(`flask key create --operator`) reads every site, and alone reads views marked
`@operators_only` (`/health/pipeline`, whose queue, backlog and lag are every site's).
A missing or unknown key is a 401, a key of another site a 403. `require_operator_key` is
the same check for a view of another service (ingestion's `/metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Response, current_app, request

from app.access.keys import LookupBudget, bearer_token, key_cache
from app.extensions import mongo
from app.settings import current_settings
from app.store.sites import StoredKey
from app.web.client_address import request_limited_address
from app.web.errors import error_response

View = TypeVar("View", bound=Callable[..., object])
PUBLIC_ATTRIBUTE = "access_public"
OPERATORS_ATTRIBUTE = "access_operators_only"
SITE_IN_BODY_ATTRIBUTE = "access_site_in_body"


def public(view: View) -> View:
    """Mark a view that anyone may call (e.g. `/health`)."""
    setattr(view, PUBLIC_ATTRIBUTE, True)
    return view


def operators_only(view: View) -> View:
    """Mark a view that only an operator key may call, whatever site it is asked about."""
    setattr(view, OPERATORS_ATTRIBUTE, True)
    return view


def site_in_body(view: View) -> View:
    """Mark a view whose site is the `site_id` of its JSON body (Plausible's `POST /api/v2/query`)."""
    setattr(view, SITE_IN_BODY_ATTRIBUTE, True)
    return view


def requested_site(view: object) -> str | None:
    """The site a request asks about: its `site_id` parameter, or its body's."""
    if not getattr(view, SITE_IN_BODY_ATTRIBUTE, False):
        return request.args.get("site_id")
    body = request.get_json(silent=True)
    site_id = body.get("site_id") if isinstance(body, dict) else None
    return site_id if isinstance(site_id, str) else None


def require_read_key() -> Response | None:
    """A `before_request` hook: None lets the request through, a response refuses it."""
    settings = current_settings()
    view = current_app.view_functions.get(request.endpoint or "")
    if settings.auth_mode == "open" or view is None or getattr(view, PUBLIC_ATTRIBUTE, False):
        return None
    key = request_key("read key")
    if isinstance(key, Response):
        return key
    if key.site_id is None:  # an operator key
        return None
    site_id = requested_site(view)
    if not site_id:
        return error_response(403, "Without site_id this needs an operator key")
    if getattr(view, OPERATORS_ATTRIBUTE, False):
        return error_response(403, "Only an operator key reads this")
    if site_id != key.site_id:
        return error_response(403, f"This key does not give access to site {site_id}")
    return None


# Ingestion's `/metrics` is public and no rate limit covers it: each process asks MongoDB
# about a few tokens it never verified a second per client (address), and refuses the rest
# unasked.
OPERATOR_KEY_LOOKUPS_PER_SECOND = 5
LOOKUPS_EXTENSION = "operator_key_lookups"


def require_operator_key() -> Response | None:
    """For a view outside reporting's blueprint (ingestion's `/metrics`): None lets an
    operator key through (or anyone, `AUTH_MODE=open`), a response refuses the request."""
    if current_settings().auth_mode == "open":
        return None
    lookups = current_app.extensions.setdefault(
        LOOKUPS_EXTENSION, LookupBudget(OPERATOR_KEY_LOOKUPS_PER_SECOND)
    )
    key = request_key("operator key", lookups)
    if isinstance(key, Response):
        return key
    return None if key.site_id is None else error_response(403, "Only an operator key reads this")


def request_key(kind: str, lookups: LookupBudget | None = None) -> StoredKey | Response:
    """The stored key the request's `Authorization: Bearer` names, or the 401 that refuses a
    request without one (`kind` names the key it needs; `lookups` limits how often MongoDB
    is asked about tokens never verified)."""
    secret = bearer_token(request.headers.get("Authorization"))
    if secret is None:
        return unauthorized(f"Missing {kind}: send Authorization: Bearer <key>", "")
    client = request_limited_address() if lookups is not None else ""
    key = key_cache.verify(mongo.db, secret, current_settings().key_cache_seconds, lookups, client)
    if key is None:
        return unauthorized(f"Invalid {kind}", ', error="invalid_token"')
    return key


def unauthorized(message: str, challenge_detail: str) -> Response:
    response = error_response(401, message)
    response.headers["WWW-Authenticate"] = f'Bearer realm="analytics"{challenge_detail}'
    return response
