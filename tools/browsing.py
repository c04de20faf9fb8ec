"""What pages send about their visitors, for benchmarks and tests: real browsers' user
agents, referrers and campaign links, mixed as a site's traffic mixes them."""

from __future__ import annotations

from typing import Any

BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
)
REFERRERS = (
    "https://www.google.com/",
    "https://www.google.de/",
    "https://t.co/x1",
    "https://news.ycombinator.com/item?id=1",
    "https://blog.example.org/post",
    "",
)


def visitor_fields(n: int, host: str = "example.com", distinct_agents: int = 500) -> dict[str, Any]:
    """The `n`th event's url, referrer and visitor's user agent: among `distinct_agents`
    user agents (browsers' builds differ), one event in ten from a campaign link."""
    agent = BROWSER_AGENTS[n % len(BROWSER_AGENTS)]
    build = (n // len(BROWSER_AGENTS)) % max(1, distinct_agents // len(BROWSER_AGENTS))
    campaign = "?utm_source=newsletter&utm_medium=email&utm_campaign=launch" if n % 10 == 0 else ""
    fields = {"url": f"https://{host}/p{n % 200}{campaign}", "user_agent": f"{agent} build/{build}"}
    referrer = REFERRERS[n % len(REFERRERS)]
    return fields | ({"referrer": referrer} if referrer else {})
