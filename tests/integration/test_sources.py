"""Where visitors came from and what they used, through the real pipeline: events sent with
a URL, a referrer, a browser's user agent and an address are stored with their source,
device and country, without the user agent or the address, and `/stats/breakdown` counts
them as sent, as the raw events do."""

from collections import Counter

import requests

from tests.integration.client import TIMEOUT, wait_for_views
from tools.factories import make_event, new_site_id

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
# (referrer, url's query, user agent) -> the source, browser and device each should count as.
SENT = [
    ("https://www.google.de/", "", CHROME_WINDOWS, "Google", "Chrome", "desktop"),
    ("https://www.google.com/search?q=x", "", SAFARI_IPHONE, "Google", "Mobile Safari", "mobile"),
    ("https://t.co/abc", "", SAFARI_IPHONE, "X", "Mobile Safari", "mobile"),
    ("https://news.ycombinator.com/item?id=1", "", SAFARI_IPAD, "Hacker News", "Mobile Safari", "tablet"),
    (
        "https://www.google.de/",
        "?utm_source=newsletter&utm_medium=email",
        CHROME_WINDOWS,
        "newsletter",
        "Chrome",
        "desktop",
    ),
    ("https://www.example.com/other-page", "", CHROME_WINDOWS, None, "Chrome", "desktop"),
]


# A server in AUTH_MODE=open names each visitor's address: German, Japanese, private.
ADDRESSES = ["81.169.145.0", "1.0.16.1", "10.0.0.7"]


def breakdown(reporting_url, site_id, by, endpoint="/stats/breakdown"):
    params = {"site_id": site_id, "date": "2025-11-15", "by": by}
    response = requests.get(f"{reporting_url}{endpoint}", params=params, timeout=TIMEOUT)
    response.raise_for_status()
    return {row["value"]: row["views"] for row in response.json()["results"]}


def test_breakdowns_by_source_browser_and_device_count_what_was_sent(pipeline, db):
    site_id = new_site_id()
    events = [
        make_event(
            site_id=site_id,
            url=f"https://example.com/pricing{query}",
            referrer=referrer,
            user_agent=agent,
            ip=ADDRESSES[n % len(ADDRESSES)],
        )
        for n, (referrer, query, agent, *_) in enumerate(SENT)
    ]
    response = requests.post(f"{pipeline['ingestion']}/events", json={"events": events}, timeout=TIMEOUT)
    assert response.json()["accepted"] == len(SENT)
    wait_for_views(pipeline["reporting"], site_id, "2025-11-15", len(SENT))
    for by, column in (("source", 3), ("browser", 4), ("device", 5)):
        expected = Counter(row[column] for row in SENT if row[column])
        assert breakdown(pipeline["reporting"], site_id, by) == expected, by
        assert breakdown(pipeline["reporting"], site_id, by, "/stats/aggregated") == expected, by
    expected_countries = Counter(["DE", "JP"] * (len(SENT) // 3))
    assert breakdown(pipeline["reporting"], site_id, "country") == expected_countries
    stored = list(db.events.find({"site_id": site_id}))
    assert all("user_agent" not in event and "ip" not in event for event in stored)
    assert {event.get("utm_medium") for event in stored} == {None, "email"}
