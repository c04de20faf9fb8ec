"""Demo traffic for `flask seed-demo`: days of visits to a small product site, as browsers and
a few bots would send them, made from a seed so that a run can be repeated.

Each visitor keeps a real browser's user agent, an address from the documentation ranges
(RFC 5737, RFC 3849), a screen and a language; each visit comes from a source (a search
engine, a social site, a newsletter's UTM link, or none), views one page (a bounce) or
navigates on like a single-page app, and sometimes sends a custom event with props.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

ORIGIN = "https://demo.example"
# (user agent, screen): desktops, phones and tablets, as those browsers send them.
BROWSERS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "1920x1080",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "1512x982",
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "2560x1440"),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "1366x768",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
        "393x852",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.81 Mobile Safari/537.36",
        "412x915",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "360x780",
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
        "820x1180",
    ),
]
BROWSER_WEIGHTS = [30, 12, 5, 6, 22, 15, 5, 5]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 "
    "Safari/537.36",
]
# (referrer, query string of the landing page), weighted: where visits come from.
SOURCES = [
    (None, ""),
    ("https://www.google.com/", ""),
    ("https://duckduckgo.com/", ""),
    ("https://news.ycombinator.com/", ""),
    ("https://t.co/", ""),
    ("https://github.com/", ""),
    (None, "?utm_source=newsletter&utm_medium=email&utm_campaign=launch"),
    ("https://www.reddit.com/", "?utm_source=reddit&utm_medium=social&utm_campaign=launch"),
]
SOURCE_WEIGHTS = [30, 25, 6, 8, 6, 5, 12, 8]
LANGUAGES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR"]
LANGUAGE_WEIGHTS = [40, 12, 14, 10, 8, 8, 8]
PAGES = {
    "/": "Demo: analytics you own",
    "/pricing": "Pricing",
    "/features": "Features",
    "/docs": "Documentation",
    "/docs/install": "Install",
    "/docs/api": "API reference",
    "/blog": "Blog",
    "/blog/launch": "We launched",
    "/blog/self-hosting": "Self-hosting, the easy way",
    "/signup": "Sign up",
}
LANDINGS = ["/", "/", "/", "/pricing", "/blog/launch", "/blog/self-hosting", "/docs", "/features"]
# Custom events, each with the page it happens on and its props' possible values.
CUSTOM = [
    ("signup", "/signup", {"plan": ["free", "pro", "team"]}),
    ("download", "/docs/install", {"file": ["demo-1.4.2.tar.gz", "demo-1.4.2.zip"]}),
    ("outbound_click", "/docs/api", {"url": ["https://github.com/demo/demo"]}),
]
PAGE_VIEW = "page_view"
BOUNCE_RATE = 0.4
BOT_SHARE = 0.03
LOGGED_IN_SHARE = 0.1


@dataclass(frozen=True)
class Visitor:
    user_agent: str
    screen: str
    language: str
    ip: str
    user_id: str | None


def visits_on(day: date, per_day: int, first_day: date) -> int:
    """How many visits a day has: fewer at weekends, slowly growing."""
    weekend = day.weekday() >= 5
    growth = 1 + 0.01 * (day - first_day).days
    return round(per_day * growth * (0.6 if weekend else 1.0))


def demo_events(
    site_id: str, days: int, now: datetime, seed: int = 1, per_day: int = 150
) -> Iterator[dict[str, Any]]:
    """The `POST /events` bodies of `days` days of traffic to `site_id`, ending `now` (today
    until now, and the days before it), in time order within each visit; the same for the same
    seed, site, days and day."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    # The first day seeds too: a run on a later day makes events (and event ids) of its own.
    rng = random.Random(f"{seed}:{site_id}:{first.isoformat()}")
    visitors: list[Visitor] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        for _ in range(visits_on(day, per_day, first)):
            # A daytime peak: visits bunch around 14:00 UTC.
            moment = datetime.combine(day, time(), tzinfo=UTC) + timedelta(
                seconds=min(86399, max(0, rng.gauss(14 * 3600, 4 * 3600)))
            )
            if moment > now:
                continue
            returning = visitors and rng.random() < 0.3
            visitor = rng.choice(visitors) if returning else new_visitor(rng, len(visitors))
            if not returning:
                visitors.append(visitor)
            yield from visit(rng, site_id, visitor, moment, now)
        for _ in range(max(1, round(visits_on(day, per_day, first) * BOT_SHARE))):
            moment = datetime.combine(day, time(), tzinfo=UTC) + timedelta(seconds=rng.randrange(86400))
            if moment <= now:
                yield bot_event(rng, site_id, moment)


def new_visitor(rng: random.Random, number: int) -> Visitor:
    user_agent, screen = rng.choices(BROWSERS, BROWSER_WEIGHTS)[0]
    ip = rng.choice(
        [
            f"192.0.2.{rng.randrange(1, 255)}",
            f"198.51.100.{rng.randrange(1, 255)}",
            f"203.0.113.{rng.randrange(1, 255)}",
            f"2001:db8::{rng.randrange(1, 65535):x}",
        ]
    )
    user_id = f"demo-user-{number}" if rng.random() < LOGGED_IN_SHARE else None
    return Visitor(user_agent, screen, rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0], ip, user_id)


def visit(
    rng: random.Random, site_id: str, visitor: Visitor, start: datetime, now: datetime
) -> Iterator[dict[str, Any]]:
    """One visit: a landing page view from its source, then (unless it bounces) page views of a
    single-page app's navigations, and perhaps a custom event."""
    referrer, query = rng.choices(SOURCES, SOURCE_WEIGHTS)[0]
    path = rng.choice(LANDINGS)
    moment = start
    yield event(rng, site_id, visitor, PAGE_VIEW, path, moment, referrer, query)
    if rng.random() < BOUNCE_RATE:
        return
    for _ in range(rng.randint(1, 5)):
        moment += timedelta(seconds=rng.randint(8, 180))
        previous, path = path, rng.choice(list(PAGES))
        if moment > now:
            return
        # A navigation in the page: the tracker sends the previous page as its referrer.
        yield event(rng, site_id, visitor, PAGE_VIEW, path, moment, f"{ORIGIN}{previous}", "")
    name, page, props = rng.choice(CUSTOM)
    if rng.random() < 0.35 and moment + timedelta(seconds=20) <= now:
        chosen = {key: rng.choice(values) for key, values in props.items()}
        yield event(rng, site_id, visitor, name, page, moment + timedelta(seconds=20), None, "", chosen)


def event(
    rng: random.Random,
    site_id: str,
    visitor: Visitor,
    event_type: str,
    path: str,
    moment: datetime,
    referrer: str | None,
    query: str,
    props: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site_id": site_id,
        "event_type": event_type,
        "url": f"{ORIGIN}{path}{query}",
        "timestamp": moment.isoformat(timespec="milliseconds"),
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "title": PAGES.get(path, ""),
        "screen": visitor.screen,
        "language": visitor.language,
        "user_agent": visitor.user_agent,
        "ip": visitor.ip,
        "referrer": referrer,
        "user_id": visitor.user_id,
        "props": props,
    }
    return {name: value for name, value in body.items() if value not in (None, "")}


def bot_event(rng: random.Random, site_id: str, moment: datetime) -> dict[str, Any]:
    """A crawler's or a headless browser's page view: ingestion drops it as a bot."""
    bot = Visitor(rng.choice(BOTS), "", "", f"66.249.66.{rng.randrange(1, 255)}", None)
    return event(rng, site_id, bot, PAGE_VIEW, rng.choice(list(PAGES)), moment, None, "")
