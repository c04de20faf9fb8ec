"""Headless Chromium loads three pages, each on a domain of its own mapped to 127.0.0.1: one
with our tag, one with Plausible's real npm tracker pointed at `/api/event`, and one on a
domain no site lists, with both. On the first two, a visitor's page view, single-page
navigations, a custom event with props and a click on an outbound link reach MongoDB and
count in `/stats`; the third sends, and nothing of it is stored.

One browser for the three pages, the session's services in AUTH_MODE=keys (`keyed`), and two
sites registered for the test, seen by ingestion within its registry refresh.
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
from datetime import UTC, datetime
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
class Visits:
    landing: str  # where the outbound link goes
    stored: dict[str, list[dict[str, Any]]]  # each tracker's site's stored events


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
        landing = f"http://elsewhere.test:{pages.port}/landing"
        ours, plausible, foreign = sites["ours"], sites["plausible"], sites["foreign"]

        def plausible_tag(domain: str) -> str:
            config = {"domain": domain, "endpoint": f"{keyed.ingestion}/api/event", "outboundLinks": True}
            return PLAUSIBLE.format(config=json.dumps(config), bundle=plausible_bundle)

        pages.pages = {
            ours.domain: LINK.format(title="Our tag", landing=landing)
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
        for body in sent_bodies(browser, keyed.ingestion):
            print("sent:", body)  # what the trackers sent (pytest -s)
        figures.append(
            f"tracker browser: three pages, {time.monotonic() - started:.1f} s to every event stored"
        )
        yield Visits(landing, stored)


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
        assert {event["title"] for event in visits.stored["ours"]} == {"Our tag"}


@pytest.mark.parametrize("tracker", ["ours", "plausible"])
def test_the_visitor_is_one_without_a_cookie_and_the_address_is_not_stored(visits, tracker):
    """The same browser on one site is one visitor (a daily hash of site, address and user
    agent, app/visitors.py); the address never reaches the store."""
    events = visits.stored[tracker]
    assert {len(event["visitor_id"]) for event in events} == {32}
    assert len({event["visitor_id"] for event in events}) == 1
    assert not any("ip" in event for event in events)


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
