"""What a visitor used, from their user agent: device class, browser and OS with major
versions, by ua-parser (its Rust matcher, ua-parser-rs) behind an LRU cache: a site's visitors
send few distinct user agents, and a parse costs tens of microseconds."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import Parser, Result
from ua_parser.loaders import load_lazy_builtins
from ua_parser.regex import Resolver

# Distinct user agents remembered per worker process.
CACHE_SIZE = 4096
# Operating systems of phones and tablets; a tablet is told apart by `_device_class`.
HANDHELD_OS = frozenset(
    {
        "iOS",
        "iPadOS",
        "Android",
        "Windows Phone",
        "BlackBerry OS",
        "KaiOS",
        "Firefox OS",
        "Symbian OS",
        "Tizen",
    }
)
TABLET_DEVICES = ("iPad", "Kindle", "Tablet")
UNKNOWN = "Other"

# The lazy rules compile each regex when first needed, as ua-parser does for its Rust matcher.
_parser = Parser(Resolver(load_lazy_builtins()))


@lru_cache(maxsize=CACHE_SIZE)
def describe(user_agent: str) -> dict[str, str]:
    """The device class (desktop, mobile or tablet), browser, browser_version, os and
    os_version (majors) of a user agent; what the parser does not know is left out."""
    result = _parser.parse(user_agent)
    fields = {}
    if result.user_agent and result.user_agent.family != UNKNOWN:
        fields["browser"] = result.user_agent.family
        if result.user_agent.major:
            fields["browser_version"] = result.user_agent.major
    if result.os and result.os.family != UNKNOWN:
        fields["os"] = result.os.family
        if result.os.major:
            fields["os_version"] = result.os.major
    device = _device_class(result)
    return fields | ({"device": device} if device else {})


def _device_class(result: Result) -> str | None:
    device = result.device.family if result.device else UNKNOWN
    if device == "Spider":
        return None
    if any(name in device for name in TABLET_DEVICES):
        return "tablet"
    os = result.os.family if result.os else UNKNOWN
    if os in HANDHELD_OS:
        # Android browsers on tablets leave "Mobile" out of the user agent (Google's rule for them).
        if os == "Android" and "Mobile" not in result.string:
            return "tablet"
        return "mobile"
    if "Mobile" in result.string:
        return "mobile"
    return "desktop"
