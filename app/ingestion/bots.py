"""Bots: which visitors' user agents are not people, and the count of the events dropped for
it, per site and reason (docs/visitors.md#bots).

A user agent is a bot when it names a headless browser, a browser automation framework, or
a crawler of `crawlerdetect`'s maintained list (which also lists HTTP libraries and
command-line tools: those are checked only where a browser or a visitor is claimed, see
app/ingestion/derivation.py). A browser request without any user agent is one too.

Counts live in Redis: totals by reason, and each site's by UTC day, with a fixed set of
reasons per site, so a site adds at most that many fields a day. With `AUTH_MODE=keys` only
registered sites' events are counted (the gate refuses the others first), so forged site ids
add nothing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache

import redis
from crawlerdetect import CrawlerDetect

CRAWLER = "crawler"
HEADLESS = "headless"
AUTOMATION = "automation"
NO_USER_AGENT = "no_user_agent"
REASONS = (CRAWLER, HEADLESS, AUTOMATION, NO_USER_AGENT)

# Browsers run without a screen, which user agents name.
HEADLESS_BROWSERS = re.compile(r"HeadlessChrome|PhantomJS|SlimerJS|HtmlUnit|jsdom/|Splash", re.IGNORECASE)
# Frameworks that drive a browser and say so in its user agent (`navigator.webdriver` itself
# is seen only in the page: the tracker stops there).
AUTOMATION_MARKERS = re.compile(r"Selenium|WebDriver|Puppeteer|Playwright|Cypress/|Nightmare", re.IGNORECASE)
# Distinct user agents remembered with their verdict: the checks cost a regular expression
# over hundreds of alternatives, and a site's visitors use a few thousand agents.
CACHE_SIZE = 8192
# How much of a user agent the crawler list reads: its patterns take time that grows with the
# square of the length, and a browser's agent, with the marks a crawler puts in it, fits well
# within this.
CHECKED_LENGTH = 256

PREFIX = "analytics:bots"
# A site-day's counts are kept as long as the event counters' (app/queue/counters.py).
SITE_DAY_SECONDS = 400 * 24 * 3600
SEPARATOR = "\x1f"

_crawlers = CrawlerDetect()


@lru_cache(maxsize=CACHE_SIZE)
def bot_reason(user_agent: str) -> str | None:
    """Why a visitor with this user agent is a bot, or None for a person's browser."""
    if not user_agent.strip():
        return NO_USER_AGENT
    if HEADLESS_BROWSERS.search(user_agent):
        return HEADLESS
    if AUTOMATION_MARKERS.search(user_agent):
        return AUTOMATION
    if _crawlers.isCrawler(user_agent[:CHECKED_LENGTH]):
        return CRAWLER
    return None


def _totals_key() -> str:
    return f"{PREFIX}:dropped"


def _site_day_key(day: str) -> str:
    return f"{PREFIX}:dropped:{day}"


def count_dropped(client: redis.Redis, dropped: Mapping[tuple[str, str, str], int]) -> None:
    """Add events dropped as bots, by (site, UTC day, reason)."""
    if not dropped:
        return
    pipe = client.pipeline(transaction=False)
    for (site_id, day, reason), events in dropped.items():
        pipe.hincrby(_totals_key(), reason, events)
        pipe.hincrby(_site_day_key(day), f"{site_id}{SEPARATOR}{reason}", events)
        pipe.expire(_site_day_key(day), SITE_DAY_SECONDS)
    pipe.execute()


def dropped_totals(client: redis.Redis) -> dict[str, int]:
    """Events dropped as bots, by reason, since counting began."""
    counts = client.hgetall(_totals_key())
    return _by_reason(Counter({key.decode(): int(value) for key, value in counts.items()}))


def dropped_on(client: redis.Redis, site_id: str, day: str) -> dict[str, int]:
    """A site's events of a UTC day dropped as bots, by reason."""
    return dropped_during(client, site_id, [day])


def dropped_during(client: redis.Redis, site_id: str, days: Iterable[str]) -> dict[str, int]:
    """A site's events of these UTC days dropped as bots, by reason: one round trip."""
    fields = [f"{site_id}{SEPARATOR}{reason}" for reason in REASONS]
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hmget(_site_day_key(day), fields)
    counts: Counter[str] = Counter()
    for values in pipe.execute():
        counts.update({reason: int(value or 0) for reason, value in zip(REASONS, values, strict=True)})
    return _by_reason(counts)


def _by_reason(counts: Counter[str]) -> dict[str, int]:
    return {reason: counts[reason] for reason in REASONS}
