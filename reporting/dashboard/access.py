"""Who may see a site's dashboard: whoever signed in with a read key of the site (or an
operator key), kept in a signed session cookie, or holds the site's share link.

The session keeps the key's hash, never the key, and each request verifies it again (through
the key cache, as the API does), so a revoked key stops within KEY_CACHE_SECONDS. The cookie
is `HttpOnly` and `SameSite=Strict`, `Secure` when the request came over HTTPS, and the
sign-in form carries a token of the session (checked against it), so no other site can post
it.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, Request, request, session
from flask.sessions import SecureCookieSessionInterface

from app.access import shares
from app.access.keys import hash_key, key_cache
from app.extensions import mongo
from app.settings import current_settings
from app.store.sites import StoredKey

KEY_HASH = "key_hash"
CSRF = "csrf"
COOKIE_NAME = "dashboard_session"
COOKIE_PATH = "/dashboard"


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, `Secure` whenever the request was."""

    def get_cookie_secure(self, app: Flask) -> bool:
        current: Request = request
        return current.is_secure


def init_app(app: Flask, secret_key: str) -> None:
    """The app's session: the dashboard's cookie, signed with SECRET_KEY (no sessions without)."""
    app.secret_key = secret_key or None
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH=COOKIE_PATH,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    app.session_interface = DashboardSessionInterface()


def sessions_on() -> bool:
    return bool(current_settings().secret_key)


def signed_in_key() -> StoredKey | None:
    """The read key the session was signed in with, if it is still one."""
    digest = session.get(KEY_HASH)
    if not isinstance(digest, str):
        return None
    return key_cache.verify_hash(mongo.db, digest, current_settings().key_cache_seconds)


def reads(key: StoredKey | None, site_id: str) -> bool:
    """Whether `key` reads `site_id`: a key of that site, or an operator key."""
    return key is not None and key.site_id in (None, site_id)


def may_read(site_id: str, share_token: str | None) -> bool:
    """Whether this request may see the site's dashboard: with its share link, or signed in
    with a key that reads it (anyone, with AUTH_MODE=open)."""
    if share_token is not None:
        return shares.is_shared_with(mongo.db, site_id, share_token)
    if current_settings().auth_mode == "open":
        return True
    return sessions_on() and reads(signed_in_key(), site_id)


def csrf_token() -> str:
    """The session's token for its forms, made on first use."""
    token = session.get(CSRF)
    if not isinstance(token, str):
        token = session[CSRF] = secrets.token_urlsafe(32)
    return token


def csrf_checked() -> bool:
    """Whether the posted form carries the session's token."""
    expected, sent = session.get(CSRF), request.form.get(CSRF, "")
    return isinstance(expected, str) and hmac.compare_digest(expected, sent)


def sign_in(secret: str) -> None:
    """A fresh session (a new form token too) holding the key's hash."""
    session.clear()
    session[KEY_HASH] = hash_key(secret)
    csrf_token()


def sign_out() -> None:
    session.clear()
