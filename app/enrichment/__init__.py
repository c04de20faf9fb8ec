"""What the worker derives from a queued event before storing it, one call per event:

1. the campaign fields (`utm_*`) of its `url`, and its `source`: `utm_source`, else the URL's
   `ref` or `source`, else the referrer's host, by its well-known name (`sources`);
2. the device class, browser and OS with major versions, from the visitor's `user_agent`
   (`agents`), which is then dropped: it is never stored.

Fields it cannot derive are left out. An event enriched before (a dead letter replayed) keeps
what it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.enrichment import agents, sources

# The fields `enrich` may add.
DERIVED_FIELDS = (
    "source",
    *sources.CAMPAIGN_FIELDS,
    "device",
    "browser",
    "browser_version",
    "os",
    "os_version",
)


def enrich(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message with what its URL, referrer and user agent say, without the user agent."""
    enriched = {name: value for name, value in message.items() if name != "user_agent"}
    url = message.get("url")
    derived = sources.campaign(url)
    if "source" not in derived:
        referral = sources.referral_source(url, message.get("referrer"))
        if referral:
            derived["source"] = referral
    user_agent = message.get("user_agent")
    if user_agent:
        derived |= agents.describe(user_agent)
    return derived | enriched
