"""The services' access log: client, site, status and latency of each request, never a
body nor a key."""

import re

import requests

from tests.integration.client import TIMEOUT, post_event
from tools.factories import make_event, new_site_id
from tools.processes import wait_until


def access_lines(run_dir, service, marker):
    return [line for line in (run_dir / f"{service}.log").read_text().splitlines() if marker in line]


def test_an_event_is_logged_with_client_site_status_and_latency_but_not_its_payload(ingestion_url, run_dir):
    site_id = new_site_id()
    event = make_event(site_id=site_id, user_id="user-private-4242", path="/private/page-4242")
    assert post_event(ingestion_url, event).status_code == 200
    wait_until(lambda: access_lines(run_dir, "ingestion", f"site={site_id}"), 10, "the access log line")
    [line] = access_lines(run_dir, "ingestion", f"site={site_id}")
    # Only the client's network: ingestion's clients are the visitors (docs/visitors.md).
    assert re.fullmatch(rf'127\.0\.0\.0 "POST /event HTTP/1\.1" 200 \d+ \d+ms site={site_id}', line), line
    log = (run_dir / "ingestion.log").read_text()
    assert "user-private-4242" not in log
    assert "/private/page-4242" not in log


def test_a_refused_event_is_logged_with_its_status(ingestion_url, run_dir):
    probe = new_site_id()
    event = make_event(timestamp="not a time")
    response = requests.post(f"{ingestion_url}/event?probe={probe}", json=event, timeout=TIMEOUT)
    assert response.status_code == 400
    wait_until(lambda: access_lines(run_dir, "ingestion", probe), 10, "the access log line")
    [line] = access_lines(run_dir, "ingestion", probe)
    pattern = rf'127\.0\.0\.0 "POST /event\?probe={probe} HTTP/1\.1" 400 \d+ \d+ms site=-'
    assert re.fullmatch(pattern, line), line


def test_a_reporting_key_never_reaches_the_log(reporting_url, run_dir):
    site_id = new_site_id()
    headers = {"Authorization": "Bearer key-private-4242"}
    requests.get(f"{reporting_url}/stats", params={"site_id": site_id, "date": "2025-11-15"}, headers=headers,
                 timeout=TIMEOUT)  # fmt: skip
    wait_until(lambda: access_lines(run_dir, "reporting", site_id), 10, "the access log line")
    assert "key-private-4242" not in (run_dir / "reporting.log").read_text()
