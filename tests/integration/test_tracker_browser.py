"""Headless Chromium loads three pages, each on a domain of its own mapped to 127.0.0.1: one
with our tag, one with Plausible's real npm tracker pointed at `/api/event`, and one on a
domain no site lists, with both. On the first two, a visitor's page view, single-page
navigations, a custom event with props and a click on an outbound link reach MongoDB and
count in `/stats`; the third sends, and nothing of it is stored. The visitor's clock runs two
hours fast, and our page's title is cut by the tag inside an emoji's reach.

Then the same browser says it is Googlebot and loads both trackers' pages again, and plain
requests with a crawler's and a headless browser's user agents post to `/event` and
`/api/event`: each is answered as accepted, counted by reason in `/health/pipeline` and
`analytics_bots_dropped_total`, and nothing of it is stored.

One browser for it all, the session's services in AUTH_MODE=keys (`keyed`), and two sites
registered for the test, seen by ingestion within its registry refresh.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from pymongo.database import Database
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.browser import PageServer, chromium
from tests.integration.keyed import REFRESH_SECONDS, Keyed, flask
from tests.metrics import parse, value
from tools.processes import wait_until

TRACKER = Path(__file__).resolve().parents[2] / "tracker"
TIMEOUT = 20
# The site a visitor comes from.
REFERRER = "search.test"
# Plausible's tracker as a site bundles it, configured by the page.
PLAUSIBLE_ENTRY = """
import { init, track } from "@plausible-analytics/tracker";
init(window.plausibleConfig);
window.plausibleTrack = track;
"""
LINK = '<title>{title}</title><a id="out" href="{landing}">Elsewhere</a>'
# 512 characters with the emoji last, which takes the 512th and 513th UTF-16 units: a cut by
# units would leave half of it, which ingestion refuses.
OUR_TITLE = "Our tag" + "." * 504 + "\N{GRINNING FACE}"
# The visitor's clock: two hours fast, past the five minutes ingestion's window allows ahead.
CLOCK_AHEAD = timedelta(hours=2)
FAST_CLOCK = f"""
(() => {{
  const Real = Date, ahead = {CLOCK_AHEAD.total_seconds() * 1000};
  Date = class extends Real {{
    constructor(...args) {{ super(...(args.length ? args : [Real.now() + ahead])); }}
    static now() {{ return Real.now() + ahead; }}
  }};
}})();
"""
# Google's smartphone crawler, which runs a Chromium and so the pages' scripts.
GOOGLEBOT = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.204 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
CRAWLED = "/crawled"
OUR_TAG = '<script defer src="{ingestion}/tracker.js" data-site="{site}" data-hash data-outbound></script>'
PLAUSIBLE = "<script>window.plausibleConfig = {config}</script><script>{bundle}</script>"


@dataclass(frozen=True)
class Visitor:
    """What a visitor does on a tracker's page once it is loaded: single-page navigations
    ending with a step back (popstate) to `back_to` (path and fragment), then a custom event
    (`track`), then a click on the outbound link."""

    navigate: str
    back_to: str
    track: str


OUR_VISITOR = Visitor(
    """
    history.pushState({}, "", "/spa/second");
    history.replaceState({}, "", "/spa/third");
    location.hash = "pricing";
    setTimeout(() => history.back(), 50);
    """,
    "/spa/third",
    'analytics.track("signup", {plan: "pro"})',
)
PLAUSIBLE_VISITOR = Visitor(
    """
    history.pushState({}, "", "/spa/second");
    setTimeout(() => history.back(), 50);
    """,
    "/",
    'plausibleTrack("signup", {props: {plan: "pro"}})',
)


@dataclass
class Site:
    site_id: str
    domain: str  # the page's host


@dataclass
class Crawl:
    """What the bots got: the answers, the drops counted, and the events stored of them."""

    answers: list[tuple[int, Any]]  # the plain requests' statuses and bodies
    dropped: dict[str, dict[str, int]]  # each tracker's site's bots_dropped today
    metric: dict[str, float]  # analytics_bots_dropped_total's increase, by reason
    stored: int  # events of the crawled pages stored, once a later event is


@dataclass
class Visits:
    landing: str  # where the outbound link goes
    stored: dict[str, list[dict[str, Any]]]  # each tracker's site's stored events
    sent: dict[str, dict[str, Any]]  # what our tag sent, by event id
    crawl: Crawl


@pytest.fixture(scope="module")
def plausible_bundle() -> str:
    """The real @plausible-analytics/tracker from npm (tracker/package-lock.json), bundled
    by esbuild as a site's build would."""
    done = subprocess.run(
        [str(TRACKER / "node_modules" / ".bin" / "esbuild"), "--bundle", "--format=iife", "--minify"],
        input=PLAUSIBLE_ENTRY,
        cwd=TRACKER,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


@pytest.fixture(scope="module")
def sites(keyed: Keyed) -> dict[str, Site]:
    """A site for each tracker, registered while the services run (the page with Plausible's
    is on www., its tracker names the domain without), and a domain no site lists."""
    suffix = uuid.uuid4().hex[:8]
    ours = Site(f"tagged-{suffix}", f"tagged-{suffix}.test")
    plausible = Site(f"plausible-{suffix}", f"www.plausible-{suffix}.test")
    for site in (ours, plausible):
        flask(keyed.env, "site", "add", site.site_id, "--domain", site.domain)
    return {"ours": ours, "plausible": plausible, "foreign": Site("", f"foreign-{suffix}.test")}


@pytest.fixture(scope="module")
def visits(keyed, sites, plausible_bundle, db, figures) -> Iterator[Visits]:
    """Each page loaded in turn in one browser, the foreign one first; the stored events of
    each site once the tracker's last event (the outbound click) is stored."""
    started = time.monotonic()
    with PageServer() as pages, chromium("*.test") as browser:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FAST_CLOCK})
        landing = f"http://elsewhere.test:{pages.port}/landing"
        ours, plausible, foreign = sites["ours"], sites["plausible"], sites["foreign"]

        def plausible_tag(domain: str) -> str:
            config = {"domain": domain, "endpoint": f"{keyed.ingestion}/api/event", "outboundLinks": True}
            return PLAUSIBLE.format(config=json.dumps(config), bundle=plausible_bundle)

        pages.pages = {
            ours.domain: LINK.format(title=OUR_TITLE + " and more", landing=landing)
            + OUR_TAG.format(ingestion=keyed.ingestion, site=ours.site_id),
            plausible.domain: LINK.format(title="Plausible's", landing=landing)
            + plausible_tag(plausible.domain.removeprefix("www.")),
            foreign.domain: OUR_TAG.format(ingestion=keyed.ingestion, site=ours.site_id)
            + plausible_tag(foreign.domain),
        }
        for site in (ours, plausible):
            wait_until(functools.partial(registered, keyed, site.site_id), TIMEOUT, "the site registered")
        time.sleep(REFRESH_SECONDS)  # every ingestion process has refreshed by then
        browser.get(f"http://{foreign.domain}:{pages.port}/")
        # Both trackers' page views were answered (a 403 and Plausible's drop) before the
        # pages of the sites are loaded: had either been taken, it would be stored by then.
        answered: set[int] = set()

        def both_answered() -> bool:
            answered.update(fetch_answers(browser, keyed.ingestion))
            return answered == {403, 202}

        wait_until(both_answered, TIMEOUT, "the foreign page's answers")
        visit(browser, pages, f"http://{ours.domain}:{pages.port}/", OUR_VISITOR)
        visit(browser, pages, f"http://{plausible.domain}:{pages.port}/", PLAUSIBLE_VISITOR)
        stored = {}
        for name, site in (("ours", ours), ("plausible", plausible)):
            wait_until(functools.partial(outbound_stored, db, site.site_id), TIMEOUT, f"{name}'s click")
            stored[name] = list(db.events.find({"site_id": site.site_id}))
        sent = {}
        for body in sent_bodies(browser, keyed.ingestion):
            print("sent:", body)  # what the trackers sent (pytest -s)
            if body.startswith("{") and "event_id" in body:
                event = json.loads(body)
                sent[event["event_id"]] = event
        figures.append(
            f"tracker browser: three pages, {time.monotonic() - started:.1f} s to every event stored"
        )
        started = time.monotonic()
        crawled = crawl(keyed, db, browser, pages, ours, plausible)
        figures.append(f"tracker browser: the bots' visits, {time.monotonic() - started:.1f} s to counted")
        yield Visits(landing, stored, sent, crawled)


def crawl(
    keyed: Keyed,
    db: Database[dict[str, Any]],
    browser: webdriver.Chrome,
    pages: PageServer,
    ours: Site,
    plausible: Site,
) -> Crawl:
    """The browser says it is Googlebot and loads Plausible's page, then ours (left open, so
    that our tag has no event to send again when the page goes); then plain requests of a
    crawler and of a headless browser to each endpoint. Counted once a later event of a
    person's is stored."""
    before = bots_metric(keyed)
    browser.execute_cdp_cmd("Emulation.setUserAgentOverride", {"userAgent": GOOGLEBOT})
    for site in (plausible, ours):
        browser.get(f"http://{site.domain}:{pages.port}{CRAWLED}")
    answers = []
    for user_agent in (BINGBOT, HEADLESS_CHROME):
        answered = post_as(keyed, ours, user_agent)
        answers.append((answered.status_code, answered.json()))
        answered = post_as(keyed, plausible, user_agent, plausibles=True)
        answers.append((answered.status_code, answered.text))
    expected = {"ours": {"crawler": 2, "headless": 1}, "plausible": {"crawler": 2, "headless": 1}}
    dropped: dict[str, dict[str, int]] = {}

    def counted() -> bool:
        for name, site in (("ours", ours), ("plausible", plausible)):
            dropped[name] = reporting(keyed, "/health/pipeline", site.site_id)["bots_dropped"]
        return all(
            dropped[name][reason] >= least for name in expected for reason, least in expected[name].items()
        )

    wait_until(counted, TIMEOUT, "the bots' events counted")
    after = bots_metric(keyed)
    # A person's event, sent after the bots': once it is stored, so would theirs be.
    person = {"site_id": keyed.shop, "event_type": "page_view", "path": CRAWLED, "timestamp": now()}
    marker = requests.post(f"{keyed.ingestion}/event", json=person, timeout=10).json()
    assert marker["status"] == "accepted", marker
    wait_until(
        lambda: db.events.count_documents({"site_id": keyed.shop, "path": CRAWLED}) >= 1,
        TIMEOUT,
        "a person's event",
    )
    crawled = db.events.count_documents(
        {"site_id": {"$in": [ours.site_id, plausible.site_id]}, "path": CRAWLED}
    )
    metric = {reason: after.get(reason, 0.0) - before.get(reason, 0.0) for reason in after}
    return Crawl(answers, dropped, metric, crawled)


def now() -> str:
    return datetime.now(UTC).isoformat()


def post_as(keyed: Keyed, site: Site, user_agent: str, plausibles: bool = False) -> requests.Response:
    """A page view of the site's crawled page, as a browser there posts it: to `/event` as our
    tag does, or to `/api/event` as Plausible's tracker does."""
    url = f"http://{site.domain}{CRAWLED}"
    headers = {"User-Agent": user_agent, "Origin": f"http://{site.domain}", "Content-Type": "text/plain"}
    if plausibles:
        body = {"n": "pageview", "u": url, "d": site.domain.removeprefix("www.")}
        return requests.post(f"{keyed.ingestion}/api/event", json=body, headers=headers, timeout=10)
    body = {"site_id": site.site_id, "event_type": "page_view", "url": url, "timestamp": now()}
    return requests.post(f"{keyed.ingestion}/event", data=json.dumps(body), headers=headers, timeout=10)


def bots_metric(keyed: Keyed) -> dict[str, float]:
    """analytics_bots_dropped_total of ingestion's processes, by reason."""
    response = requests.get(
        f"{keyed.ingestion}/metrics", headers={"Authorization": f"Bearer {keyed.operator_key}"}, timeout=10
    )
    response.raise_for_status()
    samples = parse(response.text)
    return {
        reason: value(samples, "analytics_bots_dropped_total", reason=reason)
        for reason in ("crawler", "headless")
    }


def registered(keyed: Keyed, site_id: str) -> bool:
    """Ingestion knows the site: a page on a host it does not list is refused for its host,
    no longer as an unknown site (and nothing is stored)."""
    event = {"site_id": site_id, "event_type": "probe", "timestamp": datetime.now(UTC).isoformat()}
    response = requests.post(
        f"{keyed.ingestion}/event", json=event, headers={"Origin": "http://probe.invalid"}, timeout=5
    )
    return "is not one of the domains" in response.json()["message"]


def visit(browser: webdriver.Chrome, pages: PageServer, url: str, visitor: Visitor) -> None:
    """Come to `url` from a link on another site (its referrer), and do there what `visitor` does."""
    pages.pages[REFERRER] = f'<a id="in" href="{url}">A search result</a>'
    browser.get(f"http://{REFERRER}:{pages.port}/results")
    browser.find_element(By.ID, "in").click()
    wait = WebDriverWait(browser, TIMEOUT)
    wait.until(lambda driver: driver.execute_script("return document.readyState") == "complete")
    browser.execute_script(visitor.navigate)
    wait.until(
        lambda driver: driver.execute_script("return location.pathname + location.hash") == visitor.back_to
    )
    browser.execute_script(visitor.track)
    browser.find_element(By.ID, "out").click()
    wait.until(lambda driver: "elsewhere.test" in driver.current_url)


def fetch_answers(browser: webdriver.Chrome, ingestion: str) -> set[int]:
    """The statuses of the answers to fetches from `ingestion` in the browser's log since the
    last look."""
    statuses = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            if response["url"].startswith(ingestion) and message["params"]["type"] == "Fetch":
                statuses.add(response["status"])
    return statuses


def sent_bodies(browser: webdriver.Chrome, ingestion: str) -> list[str]:
    """The bodies of the posts to `ingestion` in the browser's log since the last look."""
    bodies = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            sent = message["params"]["request"]
            if sent["url"].startswith(ingestion) and sent["method"] == "POST":
                bodies.append(sent.get("postData", ""))
    return bodies


def outbound_stored(db: Database[dict[str, Any]], site_id: str) -> bool:
    return db.events.count_documents({"site_id": site_id, "event_type": {"$ne": "page_view"}}) >= 2


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Each event's type, path and props, sorted; the whole events printed (pytest -s)."""
    for event in events:
        print(json.dumps({key: value for key, value in event.items() if key != "_id"}, default=str))
    return sorted((event["event_type"], event["path"], event.get("props")) for event in events)


def test_our_tag_sends_page_views_navigations_a_custom_event_and_an_outbound_click(visits):
    assert summary(visits.stored["ours"]) == [
        ("outbound_click", "/spa/third", {"url": visits.landing}),
        ("page_view", "/", None),
        ("page_view", "/spa/second", None),
        ("page_view", "/spa/third", None),  # replaceState
        ("page_view", "/spa/third", None),  # back from the fragment: popstate
        ("page_view", "/spa/third#pricing", None),  # hashchange, with data-hash
        ("signup", "/spa/third", {"plan": "pro"}),
    ]


def test_plausibles_tracker_sends_the_same_visit_to_api_event(visits):
    """Its page views on load, pushState and popstate (it follows no replaceState), its
    custom event and its outbound click; its engagement events are answered, not stored."""
    assert summary(visits.stored["plausible"]) == [
        ("Outbound Link: Click", "/", {"url": visits.landing}),
        ("page_view", "/", None),
        ("page_view", "/", None),
        ("page_view", "/spa/second", None),
        ("signup", "/", {"plan": "pro"}),
    ]


def test_each_event_carries_what_the_page_knows(visits, sites):
    """Plausible's tracker sends no title, screen or language."""
    referrer = f"http://{REFERRER}:{visits.landing.split(':')[2].split('/')[0]}/"
    for name, known in (("ours", {"title", "screen", "language"}), ("plausible", set())):
        for event in visits.stored[name]:
            assert event["url"].startswith(f"http://{sites[name].domain}:"), event
            assert event["referrer"] == referrer, event
            assert known <= set(event), event
        assert {event["title"] for event in visits.stored["ours"]} == {OUR_TITLE}


@pytest.mark.parametrize("tracker", ["ours", "plausible"])
def test_the_visitor_is_one_without_a_cookie_and_the_address_is_not_stored(visits, tracker):
    """The same browser on one site is one visitor (a daily hash of site, address and user
    agent, app/visitors.py); the address never reaches the store."""
    events = visits.stored[tracker]
    assert {len(event["visitor_id"]) for event in events} == {32}
    assert len({event["visitor_id"] for event in events}) == 1
    assert not any("ip" in event for event in events)


@pytest.mark.parametrize("tracker", ["ours", "plausible"])
def test_each_tracker_s_visitor_makes_one_visit_shown_in_the_breakdowns(visits, keyed, db, sites, tracker):
    """The compactor folds the visitor's events into one visit (app/sessions), entered on the
    landing page and left on the last page viewed; `/stats/breakdown` shows it by entry and
    exit page, and counts every event by device and source."""
    site_id, events = sites[tracker].site_id, visits.stored[tracker]
    wait_until(
        lambda: reporting(keyed, "/stats/breakdown", site_id, by="entry_page")["results"],
        TIMEOUT,
        f"{tracker}'s visit folded",
    )
    views = sorted(
        (event for event in events if event["event_type"] == "page_view"), key=lambda e: e["timestamp"]
    )
    stored = [
        (visit["visitor"], visit["entry_page"], visit["exit_page"], visit["page_count"], visit["event_count"])
        for visit in db.visits.find({"site_id": site_id})
    ]
    assert stored == [(events[0]["visitor_id"], "/", views[-1]["path"], len(views), len(events))]
    for by, expected in (("entry_page", [("/", 1)]), ("exit_page", [(views[-1]["path"], 1)])):
        rows = reporting(keyed, "/stats/breakdown", site_id, by=by)["results"]
        assert [(row["value"], row["views"]) for row in rows] == expected
    for by in ("device", "browser", "source"):
        rows = reporting(keyed, "/stats/breakdown", site_id, by=by)["results"]
        assert sum(row["views"] for row in rows) == len(events), (by, rows)


def test_a_visitor_whose_clock_runs_fast_is_counted_at_the_server_s_time(visits):
    """Our tag sent its clock, two hours fast, as `timestamp` and `sent_at`: each event is
    stored at the time ingestion received it, which the stored `created_at` follows closely."""
    for event in visits.stored["ours"]:
        sent = datetime.fromisoformat(visits.sent[event["event_id"]]["timestamp"])
        stored = event["timestamp"].replace(tzinfo=UTC)
        assert abs(sent - stored - CLOCK_AHEAD) < timedelta(minutes=1), event
        assert abs(event["created_at"].replace(tzinfo=UTC) - stored) < timedelta(minutes=1), event


def test_a_crawler_s_and_a_headless_browser_s_events_are_answered_as_accepted(visits):
    assert visits.crawl.answers == [(200, {"status": "accepted"}), (202, "ok")] * 2


def test_the_bots_events_are_counted_by_reason_and_not_stored(visits):
    """Each site: Googlebot's page view, with our tag or Plausible's (which may add its
    engagement event when the page is left), and one from each plain request."""
    ours, plausible = visits.crawl.dropped["ours"], visits.crawl.dropped["plausible"]
    assert ours == {"crawler": 2, "headless": 1, "automation": 0, "no_user_agent": 0}
    assert (plausible["crawler"] >= 2, plausible["headless"], plausible["automation"]) == (True, 1, 0)
    assert visits.crawl.metric["headless"] == 2
    assert visits.crawl.metric["crawler"] == ours["crawler"] + plausible["crawler"]
    assert visits.crawl.stored == 0


def test_the_foreign_page_produced_nothing(visits, db, sites):
    """Its tag's page view was refused (403: not one of the site's domains), and Plausible's
    dropped (202, X-Plausible-Dropped: no site lists the domain): the sites' stored events
    are the visits' alone, and none is of the foreign domain."""
    assert db.events.count_documents({"site_id": sites["foreign"].domain}) == 0
    foreign = [
        event for events in visits.stored.values() for event in events if "foreign" in event.get("url", "")
    ]
    assert foreign == []


def reporting(keyed: Keyed, path: str, site_id: str, **params: str) -> dict[str, Any]:
    """Today's answer of a reporting endpoint about the site, read with the operator's key."""
    response = requests.get(
        f"{keyed.reporting}{path}",
        params={"site_id": site_id, "date": datetime.now(UTC).date().isoformat(), **params},
        headers={"Authorization": f"Bearer {keyed.operator_key}"},
        timeout=10,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def breakdown(keyed: Keyed, site_id: str) -> dict[str, int]:
    """Today's events of the site by type, as /stats/breakdown counts them."""
    results = reporting(keyed, "/stats/breakdown", site_id, by="event_type")["results"]
    return {row["value"]: row["views"] for row in results}


@pytest.mark.parametrize("tracker", ["ours", "plausible"])
def test_the_stored_events_count_in_stats(visits, keyed, sites, tracker):
    """The rollups trail the store by a moment: /stats/breakdown comes to count them all, and
    /stats the one visitor."""
    stored = dict(Counter(event["event_type"] for event in visits.stored[tracker]))
    site_id = sites[tracker].site_id
    wait_until(lambda: breakdown(keyed, site_id) == stored, TIMEOUT, f"{tracker}'s events in /stats")
    stats = reporting(keyed, "/stats", site_id)
    assert (stats["total_views"], stats["unique_users"]) == (len(visits.stored[tracker]), 1)
