"""A real browser posts events as trackers do, from a page on a site's domain and from a
foreign one, to the services in AUTH_MODE=keys: `fetch` with a JSON body (a CORS preflight
first) and `navigator.sendBeacon` with a text/plain one."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo.database import Database
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.browser import PageServer, chromium
from tests.integration.keyed import Keyed
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

    user: str  # the user id of both of its events
    page: dict[str, Any]  # what the page read: the fetch's status and body (or its error)
    network: dict[str, int]  # the browser's log: status of each request to /event by type


@pytest.fixture(scope="module")
def visits(keyed: Keyed, db: Database[dict[str, Any]]) -> dict[str, Visit]:
    """The tracker page loaded from the foreign host, then from the allowed one; returned once
    the allowed page's events are stored, when any taken from the foreign page, loaded first,
    would be stored too. Prints what each page got (run pytest with -s to see it)."""
    with PageServer() as pages, chromium(ALLOWED, FOREIGN) as browser:
        loaded = {host: load_tracker(browser, pages, host, keyed) for host in (FOREIGN, ALLOWED)}
    for host, visit in loaded.items():
        print(f"http://{host}/ got {json.dumps(visit.page)}; browser saw {visit.network}")
    allowed = loaded[ALLOWED].user
    wait_until(lambda: db.events.count_documents({"user_id": allowed}) == 2, 60, "the allowed page's events")
    return loaded


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
    return Visit(user, json.loads(result), network)


def answers(browser: webdriver.Chrome, url: str) -> dict[str, int]:
    """The status of each answer from `url` in the browser's log since the last call, by the
    request's type: Preflight, Fetch, Ping (a beacon)."""
    seen = {}
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"]["response"]["url"] == url:
            seen[message["params"]["type"]] = message["params"]["response"]["status"]
    return seen


def stored_paths(db: Database[dict[str, Any]], user: str) -> list[str]:
    return sorted(event["path"] for event in db.events.find({"user_id": user}))


def test_a_page_on_the_sites_domain_sends_by_fetch_and_by_beacon(visits, db):
    visit = visits[ALLOWED]
    assert visit.page == {"status": 200, "body": '{"status":"accepted"}\n', "beaconQueued": True}
    assert visit.network == {"Preflight": 200, "Fetch": 200, "Ping": 200}
    assert stored_paths(db, visit.user) == ["/beacon", "/fetch"]


def test_a_foreign_page_is_refused_and_can_read_why(visits, keyed, db):
    """CORS_ALLOWED_ORIGINS is `*`: the preflight passes, and the page reads the 403 the
    server answers the fetch; the beacon, sent without a preflight, is refused the same."""
    visit = visits[FOREIGN]
    message = f"Origin foreign.test is not one of the domains of site {keyed.shop}"
    assert visit.page["status"] == 403
    assert json.loads(visit.page["body"]) == {
        "status": "error",
        "message": message,
        "errors": {"site_id": [message]},
    }
    assert visit.network == {"Preflight": 200, "Fetch": 403, "Ping": 403}
    assert stored_paths(db, visit.user) == []
