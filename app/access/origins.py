"""Who sent an ingestion request, and which of its events are admitted with `AUTH_MODE=keys`:
those of registered sites, sent by a page on one of the site's domains, or by a server (no
`Origin` or `Referer`), with one of the site's server keys when it presents one, or when the
site requires one.

A browser names the page that sends a request in `Origin` (every `fetch` and `sendBeacon`
POST) or, failing that, `Referer`. Only the host counts: scheme and port are ignored, so
`localhost` admits `http://localhost:8080`; each host is listed on its own (`www.` too).
`Origin: null` (sandboxed frames, `file:` pages, some redirects) names no host and is refused.
A server-side check: unlike CORS headers it also stops `text/plain` beacons, which browsers
send without asking. It cannot stop a non-browser client that forges the headers; that is
what rate limits are for, and server keys, which a site may require of every server.

A server presents its key as `Authorization: Bearer <key>`; browsers send no such header to
ingestion (its CORS answers do not allow it), so a request with one is a server's, whatever
its other headers say. The gate works from a key's hash (`Sender.key_hash`), so an endpoint
that reads the key elsewhere (HTTP basic auth, as Segment's SDKs send their write key) can
check it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, g, request

from app.access.keys import bearer_token, hash_key
from app.access.registry import SiteRegistry

# Why an event of a site is refused, or None when it is admitted.
Gate = Callable[[str], str | None]
# The kinds of sender, each with a budget of its own per site (app/ingestion/rate_limits.py).
BROWSER = "browser"
SERVER = "server"


@dataclass(frozen=True)
class Sender:
    """A request's sender: the host of the page it names ("" for `Origin: null`; None when
    it names none), and the hash of the server key it presents (None: none)."""

    host: str | None
    key_hash: str | None = None

    @property
    def kind(self) -> str:
        return SERVER if self.key_hash is not None or self.host is None else BROWSER


def page_host(origin: str | None, referer: str | None) -> str | None:
    """The host of the page that sent a request with these headers, "" if they name none
    (`Origin: null`), or None when neither is sent (a server, an SDK, curl)."""
    source = origin or referer
    if not source:
        return None
    try:
        host = urlsplit(source).hostname
    except ValueError:
        host = None
    return (host or "").rstrip(".")


def request_sender() -> Sender:
    """The sender of the current request, worked out once per request."""
    if "sender" not in g:
        key = bearer_token(request.headers.get("Authorization"))
        g.sender = Sender(
            page_host(request.headers.get("Origin"), request.headers.get("Referer")),
            None if key is None else hash_key(key),
        )
    sender: Sender = g.sender
    return sender


def site_gate(registry: SiteRegistry, sender: Sender) -> Gate:
    """The check of one request's events: each event's site must be registered and admit
    the sender: a server key must be one of the site's; a page's host one of its domains; a
    server without a key, a site that does not require one."""

    def refusal(site_id: str) -> str | None:
        site = registry.site(site_id)
        if site is None:
            return f"Unknown site: {site_id} is not registered"
        if sender.key_hash is not None:
            if sender.key_hash not in site.server_keys:
                return f"The server key is not one of site {site_id}'s keys"
        elif sender.host is not None:
            if sender.host not in site.domains:
                return f"Origin {sender.host or 'null'} is not one of the domains of site {site_id}"
        elif site.require_server_key:
            return (
                f"Site {site_id} takes events from servers only with its server key: "
                "send Authorization: Bearer <key>"
            )
        return None

    return refusal


def request_gate() -> Gate | None:
    """The gate of the current request, or None when the app admits every site (`AUTH_MODE=open`)."""
    registry: SiteRegistry | None = current_app.extensions.get("site_registry")
    if registry is None:
        return None
    return site_gate(registry, request_sender())


def domain_name(value: str) -> str:
    """A domain as `site add` stores it and `page_host` compares it: a lower-case host name,
    without scheme, port, path or trailing dot. Raises ValueError for anything else."""
    domain = value.strip().lower().rstrip(".")
    if not domain or any(mark in domain for mark in ":/?#@ "):
        raise ValueError(f"{value!r} is not a host name (give example.com, not a URL or host:port)")
    return domain
