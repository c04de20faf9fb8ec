"""The dashboard in a real browser against the real processes (AUTH_MODE=keys): a site seeded
by `flask seed-demo` and events whose path and prop are markup, signed in with the site's
read key, the range and time zone changed through the form, then filtered by a click on a
source. Every figure and table the page shows equals the API's answer, the chart is drawn,
markup shows as text, and the browser logs no JavaScript error. Full-page screenshots at a
desktop's and a phone's width are saved under var/screenshots/ (git-ignored)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from reporting.filters import escape
from tests.integration.browser import chromium
from tests.integration.client import TIMEOUT
from tests.integration.keyed import Keyed, flask
from tools.factories import make_event
from tools.processes import wait_until

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PAGE_TIMEOUT = 60
MARKUP_PATH = "/<script>alert(1)</script>"
MARKUP_PROP = '<img src=x onerror="alert(2)">'
# Views of the markup path: enough to rank among the top pages the page shows.
MARKUP_VIEWS = 40
PUBLIC_ADDRESS = "8.8.8.8"
TIME_ZONE = "Asia/Tokyo"
WIDTHS = {"desktop": (1280, False), "phone": (390, True)}
# Each table on the page as (breakdown, [(value, views as shown)]), read in one script.
READ_TABLES = """
return [...document.querySelectorAll("table[data-by]")].map((table) => [
  table.dataset.by,
  [...table.tBodies[0].rows]
    .filter((row) => row.cells[0].classList.contains("value"))
    .map((row) => [row.cells[0].textContent, row.cells[1].textContent]),
]);
"""


def count(text: str) -> int:
    return int(text.replace(",", ""))


def seed(keyed: Keyed, site: str) -> int:
    """Register `site`, send it two days of demo traffic and events whose path and prop are
    markup; return the events /stats is to count (the demo's bots are dropped)."""
    flask(keyed.env, "site", "add", site, "--domain", "localhost")
    # As `make demo` sends it: with a server key, which lets an event name its visitor's user
    # agent and address (so bots are told apart, and countries found).
    server_key = flask(keyed.env, "key", "create", site, "--server").splitlines()[-1]
    out = flask(
        keyed.env,
        *("seed-demo", site, "--days", "2", "--visits-per-day", "20", "--url", keyed.ingestion),
        *("--server-key", server_key),
    )
    sent = re.search(r"(\d+) events accepted \((\d+) of them bots', which ingestion drops\), 0 refused", out)
    assert sent, out
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # From a visitor at a public address (the demo's are documentation ones, of no country).
    event = make_event(
        site_id=site, path=MARKUP_PATH, props={"note": MARKUP_PROP}, timestamp=now, ip=PUBLIC_ADDRESS
    )
    answer = requests.post(
        f"{keyed.ingestion}/events",
        json=[event] * MARKUP_VIEWS,
        headers={"Authorization": f"Bearer {server_key}"},
        timeout=TIMEOUT,
    )
    assert answer.json()["accepted"] == MARKUP_VIEWS, answer.text
    return int(sent[1]) - int(sent[2]) + MARKUP_VIEWS


def api(keyed: Keyed, key: str, endpoint: str, **params: str) -> dict[str, Any]:
    response = requests.get(
        f"{keyed.reporting}{endpoint}",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
def site(keyed: Keyed) -> tuple[str, str]:
    """A site of its own, seeded and counted: its id and read key."""
    site_id = f"dash-{uuid.uuid4().hex[:8]}"
    expected = seed(keyed, site_id)
    key = flask(keyed.env, "key", "create", site_id).splitlines()[-1]
    today = datetime.now(UTC).date()
    days = {"start": str(today - timedelta(days=1)), "end": str(today)}

    def counted() -> bool:
        return api(keyed, key, "/stats", site_id=site_id, **days)["total_views"] == expected

    wait_until(counted, 90, f"{expected} events of {site_id} counted", interval=0.25)
    return site_id, key


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def set_field(driver: webdriver.Chrome, name: str, value: str) -> None:
    """Set a form field as a person would pick it (a date input's typing follows the locale)."""
    driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, name), value)


def screenshot(driver: webdriver.Chrome, name: str, width: int, mobile: bool) -> Path:
    """The whole page at this width, as a PNG under var/screenshots/."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"dashboard-{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def test_the_dashboard_shows_what_the_api_answers(keyed, site, browser):
    site_id, key = site
    browser.get(f"{keyed.reporting}/dashboard/{site_id}")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form.sign-in button").click()
    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda driver: driver.find_elements(By.ID, "period"))

    # Today and yesterday in Tokyo, whose today always holds the UTC now: the events just sent.
    today = datetime.now(ZoneInfo(TIME_ZONE)).date()
    period = {"start": str(today - timedelta(days=1)), "end": str(today), "tz": TIME_ZONE}
    for name, value in period.items():
        set_field(browser, name, value)
    browser.find_element(By.CSS_SELECTOR, "form.period button").click()
    WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda driver: f"tz={TIME_ZONE.replace('/', '%2F')}" in driver.current_url
    )

    shown = {
        element.get_attribute("data-figure"): count(element.find_element(By.CLASS_NAME, "value").text)
        for element in browser.find_elements(By.CSS_SELECTOR, "[data-figure]")
    }
    stats = api(keyed, key, "/stats", site_id=site_id, **period)
    views = api(keyed, key, "/stats", site_id=site_id, event_type="page_view", **period)
    assert shown["events"] == stats["total_views"]
    assert shown["visitors"] == stats["unique_users"]
    assert shown["page_views"] == views["total_views"]
    assert shown["events"] > shown["page_views"] > 0  # the demo's custom events

    tables = {
        by: [(value, count(views)) for value, views in rows]
        for by, rows in browser.execute_script(READ_TABLES)
    }
    breakdowns = [by for by in tables if by != "bots"]
    assert {"path", "source", "utm_campaign", "device", "browser", "os", "country", "event_type"} <= set(
        breakdowns
    )
    assert any(by.startswith("prop:") for by in breakdowns)
    for by in breakdowns:
        answer = api(keyed, key, "/stats/breakdown", site_id=site_id, by=by, **period)
        assert tables[by] == [(row["value"], row["views"]) for row in answer["results"]], by
    assert tables["path"][0] == (MARKUP_PATH, MARKUP_VIEWS)
    assert tables["prop:note"] == [(MARKUP_PROP, MARKUP_VIEWS)]
    assert tables["country"] == [("US", MARKUP_VIEWS)]
    assert sum(views for _, views in tables["bots"]) == dropped_bots(keyed, site_id, today)

    assert browser.find_elements(By.CSS_SELECTOR, "#chart canvas"), "the chart was not drawn"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018  (reading it is the check)

    for name, (width, mobile) in WIDTHS.items():
        assert screenshot(browser, name, width, mobile).stat().st_size > 0
        overflow = browser.execute_script("return document.documentElement.scrollWidth")
        assert overflow <= width, f"the page is wider than a {name}'s screen"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []

    # A click on a source filters the page by it: every figure and table is the filtered API's.
    every_event = shown["events"]
    row = browser.find_element(By.CSS_SELECTOR, 'table[data-by="source"] td.value a')
    source = row.text
    filtered = {**period, "filters": f"source=={escape(source)}"}
    row.click()
    WebDriverWait(browser, PAGE_TIMEOUT).until(lambda driver: driver.find_elements(By.ID, "filtered"))
    assert f"Filtered by source is {source}" in browser.find_element(By.ID, "filtered").text
    shown = {
        element.get_attribute("data-figure"): count(element.find_element(By.CLASS_NAME, "value").text)
        for element in browser.find_elements(By.CSS_SELECTOR, "[data-figure]")
    }
    stats = api(keyed, key, "/stats", site_id=site_id, **filtered)
    assert 0 < stats["total_views"] < every_event
    assert shown["events"] == stats["total_views"]
    assert shown["visitors"] == stats["unique_users"]
    assert (
        shown["page_views"]
        == api(keyed, key, "/stats", site_id=site_id, event_type="page_view", **filtered)["total_views"]
    )
    for by, rows in browser.execute_script(READ_TABLES):
        if by != "bots":
            answer = api(keyed, key, "/stats/breakdown", site_id=site_id, by=by, **filtered)
            assert [(value, count(views)) for value, views in rows] == [
                (row["value"], row["views"]) for row in answer["results"]
            ], by
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


def dropped_bots(keyed: Keyed, site_id: str, today: date) -> int:
    """The site's bots dropped on the UTC days that yesterday and today in Tokyo (UTC+9)
    touch, as the operator's /health/pipeline counts them: from 15:00 UTC the day before
    yesterday to 15:00 UTC today."""
    days = [today - timedelta(days=offset) for offset in (2, 1, 0)]
    return sum(
        sum(
            api(keyed, keyed.operator_key, "/health/pipeline", site_id=site_id, date=str(day))[
                "bots_dropped"
            ].values()
        )
        for day in days
    )
