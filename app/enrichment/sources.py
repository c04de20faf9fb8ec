"""Where a visitor came from: the campaign fields of the page's URL and the source, from
`utm_source`, else the URL's `ref` or `source` parameter, else the referrer's host (none
for a referral from the site itself), well-known hosts named by sources.json."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CAMPAIGN_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# URL parameters a link names its source by when it has no `utm_source`, in this order.
SOURCE_PARAMETERS = ("ref", "source")
SOURCES_FILE = Path(__file__).with_name("sources.json")
# A brand's host ends in at most this many labels, each at most MAX_ENDING_LABEL characters:
# a country code or generic ending (de, com, co.uk, com.br), never another site's domain.
MAX_ENDING_LABELS = 2
MAX_ENDING_LABEL = 3
# Referrer hosts whose names are remembered per worker process.
HOSTS_CACHE_SIZE = 4096


def campaign(url: str | None) -> dict[str, str]:
    """The URL's non-empty `utm_*` parameters (the first of each), and `source`: from them,
    or from `ref` or `source`."""
    if not url or "?" not in url:  # most page views: spares the URL's parsing
        return {}
    query = parse_qs(urlsplit(url).query)
    fields = {name: query[name][0].strip() for name in CAMPAIGN_FIELDS if name in query}
    fields = {name: value for name, value in fields.items() if value}
    named = [fields.get("utm_source")] + [
        query[name][0].strip() for name in SOURCE_PARAMETERS if name in query
    ]
    source = next((value for value in named if value), None)
    return fields | ({"source": source} if source else {})


def referral_source(url: str | None, referrer: str | None) -> str | None:
    """The referrer's host as a source, by its well-known name if it has one; None when there
    is no referrer host, or it is the page's own (a leading `www.` ignored on both)."""
    host = _bare_host(referrer)
    if not host or host == _bare_host(url):
        return None
    return known_name(host) or host


@lru_cache(maxsize=HOSTS_CACHE_SIZE)
def known_name(host: str) -> str | None:
    """The one name sources.json gives a host (lower case, no leading `www.`), if any;
    cached, since a site's referrers come from few hosts."""
    hosts, brands = _known()
    labels = host.split(".")
    for start in range(len(labels) - 1):
        name = hosts.get(".".join(labels[start:]))
        if name:
            return name
    for position, label in enumerate(labels[:-1]):
        ending = labels[position + 1 :]
        if (
            label in brands
            and len(ending) <= MAX_ENDING_LABELS
            and all(len(part) <= MAX_ENDING_LABEL for part in ending)
        ):
            return brands[label]
    return None


def _bare_host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:  # a malformed URL, such as an unclosed IPv6 bracket
        return None
    return host.removeprefix("www.") if host else None


@cache
def _known() -> tuple[dict[str, str], dict[str, str]]:
    data = json.loads(SOURCES_FILE.read_text())
    return data["hosts"], data["brands"]
