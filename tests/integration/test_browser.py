"""A real browser posts events as trackers do, from a page on a site's domain and from a
foreign one, to the services in AUTH_MODE=keys: `fetch` with a JSON body (a CORS preflight
first) and `navigator.sendBeacon` with a text/plain one. Twice: with CORS_ALLOWED_ORIGINS at
its default `*`, and listing the allowed page's origin alone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.database import Database
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.browser import PageServer, answers, chromium
from tests.integration.keyed import Keyed, keyed_services
from tools.factories import make_event
from tools.processes import wait_until

ALLOWED, FOREIGN = "allowed.test", "foreign.test"
# Generous: a page load, a preflight and two posts on a loaded machine.
PAGE_TIMEOUT = 60

# What a tracker does: a fetch whose JSON body makes the browser ask first (a preflight),
# and a beacon, which browsers send without asking; the page shows what it could read.
TRACKER_PAGE = """<!doctype html>
<title>tracker</title>
<pre id="result"></pre>
<script>
const config = %s;
const beaconQueued = navigator.sendBeacon(config.url, JSON.stringify(config.beacon));
fetch(config.url, {
  method: "POST",
  body: JSON.stringify(config.fetch),
  headers: {"Content-Type": "application/json"},
})
  .then(async (response) => ({status: response.status, body: await response.text()}))
  .catch((error) => ({error: String(error)}))
  .then((result) => {
    document.getElementById("result").textContent = JSON.stringify({...result, beaconQueued});
  });
</script>
"""


@dataclass
class Visit:
    """What one load of the tracker page got."""

    site: str  # the site id of both of its events
    user: str  # their user id
    page: dict[str, Any]  # what the page read: the fetch's status and body (or its error)
    network: dict[str, int]  # the browser's log: status of each answer from /event by type


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with PageServer() as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """One Chromium for every visit: each loads its page afresh, and reads from the browser's
    log only the answers from its own services' URL."""
    with chromium(ALLOWED, FOREIGN) as driver:
        yield driver


@pytest.fixture(scope="module")
def any_origin(keyed, browser, pages, db) -> dict[str, Visit]:
    """The visits with CORS_ALLOWED_ORIGINS at its default, `*`: the session's keyed services."""
    return visit_both(keyed, browser, pages, db)


@pytest.fixture(scope="module")
def listed_origin(service_env, run_dir, worker, browser, pages, db) -> dict[str, Visit]:
    """The visits with CORS_ALLOWED_ORIGINS listing the allowed page's origin alone."""
    env = {**service_env, "CORS_ALLOWED_ORIGINS": f"http://{ALLOWED}:{pages.port}"}
    with keyed_services(env, run_dir) as keyed:
        return visit_both(keyed, browser, pages, db)


def visit_both(
    keyed: Keyed, browser: webdriver.Chrome, pages: PageServer, db: Database[dict[str, Any]]
) -> dict[str, Visit]:
    """Load the tracker page from the foreign host, then from the allowed one, against the
    services in keys mode; return once the allowed page's events are stored, when any taken
    from the foreign page, loaded first, would be stored too. Prints what each page got (run
    pytest with -s to see it)."""
    visits = {host: load_tracker(browser, pages, host, keyed) for host in (FOREIGN, ALLOWED)}
    cors = keyed.env.get("CORS_ALLOWED_ORIGINS", "*")
    for host, visit in visits.items():
        print(f"CORS {cors}: http://{host}/ got {json.dumps(visit.page)}; browser saw {visit.network}")
    allowed = visits[ALLOWED].user
    wait_until(lambda: db.events.count_documents({"user_id": allowed}) == 2, 60, "the allowed page's events")
    return visits


def load_tracker(browser: webdriver.Chrome, pages: PageServer, host: str, keyed: Keyed) -> Visit:
    """Load the tracker page as http://HOST:PORT/, with events of a user of its own."""
    user = f"{host}-{uuid.uuid4().hex[:8]}"
    url = f"{keyed.ingestion}/event"
    config = {
        "url": url,
        "fetch": make_event(site_id=keyed.shop, user_id=user, path="/fetch"),
        "beacon": make_event(site_id=keyed.shop, user_id=user, path="/beacon"),
    }
    pages.html = TRACKER_PAGE % json.dumps(config)
    browser.get(f"http://{host}:{pages.port}/")
    result = WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda driver: driver.find_element(By.ID, "result").text
    )
    network: dict[str, int] = {}

    def beacon_answered() -> bool:
        network.update(answers(browser, url))
        return "Ping" in network

    # The beacon's answer may come after the page is done: poll the log until it is there.
    wait_until(beacon_answered, PAGE_TIMEOUT, f"the beacon's answer on {host}", interval=0.2)
    return Visit(keyed.shop, user, json.loads(result), network)


def stored_paths(db: Database[dict[str, Any]], user: str) -> list[str]:
    return sorted(event["path"] for event in db.events.find({"user_id": user}))


@pytest.mark.parametrize("cors", ["any_origin", "listed_origin"])
def test_a_page_on_the_sites_domain_sends_by_fetch_and_by_beacon(request, cors, db):
    visit = request.getfixturevalue(cors)[ALLOWED]
    assert visit.page == {"status": 200, "body": '{"status":"accepted"}\n', "beaconQueued": True}
    assert visit.network == {"Preflight": 200, "Fetch": 200, "Ping": 200}
    assert stored_paths(db, visit.user) == ["/beacon", "/fetch"]


def test_a_foreign_page_can_read_its_403_when_cors_allows_any_origin(any_origin, db):
    """The preflight passes, so the post reaches the server, which refuses it readably."""
    visit = any_origin[FOREIGN]
    message = f"Origin foreign.test is not one of the domains of site {visit.site}"
    assert visit.page["status"] == 403
    assert json.loads(visit.page["body"]) == {
        "status": "error",
        "message": message,
        "errors": {"site_id": [message]},
    }
    assert visit.network == {"Preflight": 200, "Fetch": 403, "Ping": 403}
    assert stored_paths(db, visit.user) == []


def test_a_foreign_origin_cors_does_not_list_gets_a_network_error_yet_its_beacon_is_sent(listed_origin, db):
    """The browser does not send a post the preflight does not admit, but a beacon needs no
    preflight: only the server's check of the site's domains keeps its event out."""
    visit = listed_origin[FOREIGN]
    assert visit.page == {"error": "TypeError: Failed to fetch", "beaconQueued": True}
    assert visit.network == {"Preflight": 200, "Ping": 403}
    assert stored_paths(db, visit.user) == []
