"""Which events ingestion admits with `AUTH_MODE=keys`: those of registered sites, sent by
a server (no `Origin` or `Referer`) or by a page on one of the site's domains.

A browser names the page that sends a request in `Origin` (every `fetch` and `sendBeacon`
POST) or, failing that, `Referer`. Only the host counts: scheme and port are ignored, so
`localhost` admits `http://localhost:8080`; each host is listed on its own (`www.` too).
`Origin: null` (sandboxed frames, `file:` pages, some redirects) names no host and is refused.
A server-side check: unlike CORS headers it also stops `text/plain` beacons, which browsers
send without asking. It cannot stop a non-browser client that forges the headers; that is
what rate limits are for.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import current_app, request

from app.access.registry import SiteRegistry

# Why an event of a site is refused, or None when it is admitted.
Gate = Callable[[str], str | None]


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


def site_gate(registry: SiteRegistry, host: str | None) -> Gate:
    """The check of one request's events: each event's site must be registered and, for a
    browser's request (`host` not None), list the page's host among its domains."""

    def refusal(site_id: str) -> str | None:
        domains = registry.domains(site_id)
        if domains is None:
            return f"Unknown site: {site_id} is not registered"
        if host is not None and host not in domains:
            return f"Origin {host or 'null'} is not one of the domains of site {site_id}"
        return None

    return refusal


def request_gate() -> Gate | None:
    """The gate of the current request, or None when the app admits every site (`AUTH_MODE=open`)."""
    registry: SiteRegistry | None = current_app.extensions.get("site_registry")
    if registry is None:
        return None
    return site_gate(registry, page_host(request.headers.get("Origin"), request.headers.get("Referer")))


def domain_name(value: str) -> str:
    """A domain as `site add` stores it and `page_host` compares it: a lower-case host name,
    without scheme, port, path or trailing dot. Raises ValueError for anything else."""
    domain = value.strip().lower().rstrip(".")
    if not domain or any(mark in domain for mark in ":/?#@ "):
        raise ValueError(f"{value!r} is not a host name (give example.com, not a URL or host:port)")
    return domain
