"""A real browser for the integration tests: headless Chromium driven by Selenium through
Debian's chromedriver (`make test` installs both), and a local web server for the pages it
loads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tools.factories import BROWSER_USER_AGENT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(*hosts: str) -> Iterator[webdriver.Chrome]:
    """Headless Chromium in which each of `hosts` resolves to 127.0.0.1, as if the page were
    on that site's real domain."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    rules = ", ".join(f"MAP {host} 127.0.0.1" for host in hosts)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",  # a container's small /dev/shm crashes tabs
        f"--host-resolver-rules={rules}",
        # Without it navigator.webdriver is true, and trackers, ours and Plausible's, send
        # nothing from an automated browser. Hidden here rather than through a test switch in
        # the tag, which every crawler could flip: the pages run the tags as a visitor gets them.
        "--disable-blink-features=AutomationControlled",
        # Ingestion drops headless browsers' events as bots' (app/ingestion/bots.py): this one stands
        # in for a person's browser, so it says what a person's Chromium says.
        f"--user-agent={BROWSER_USER_AGENT}",
    ):
        options.add_argument(argument)
    # The browser's own log of each request: what the page cannot see (a beacon's answer);
    # and its console, where a page's JavaScript errors show.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # Given the driver's path, Selenium does not look for (or download) one of its own.
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


class PageServer:
    """Serves one HTML page, whatever the path, on a free port of 127.0.0.1; set `html`
    before each load, or a page per host name in `pages`."""

    def __init__(self) -> None:
        self.html = ""
        self.pages: dict[str, str] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = self.headers.get("Host", "").rsplit(":", 1)[0]
                body = server.pages.get(host, server.html).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: pytest shows what matters."""

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def answers(driver: webdriver.Chrome, url: str) -> dict[str, int]:
    """The status of each answer from `url` in the browser's log since the last call, by the
    request's type: Preflight, Fetch, Ping (a beacon)."""
    seen = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"]["response"]["url"] == url:
            seen[message["params"]["type"]] = message["params"]["response"]["status"]
    return seen
