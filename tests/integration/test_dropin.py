"""The drop-in endpoints with the real clients of other products, against the real services
in AUTH_MODE=keys: `@umami/node` from npm, run by Node (installed by `make test` from
tests/clients/package-lock.json), and `segment-analytics-python` from PyPI."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from segment.analytics import Client
from segment.analytics.request import APIError

from tests.integration.client import TIMEOUT
from tests.integration.keyed import flask
from tools.processes import wait_until

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
PAGE = ("url", "referrer", "title", "screen", "language")


def run_umami_node(host_url: str, website: str, sends: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not (CLIENTS / "node_modules" / "@umami" / "node").is_dir():
        pytest.fail("@umami/node is not installed: run `make test` (it runs npm ci in tests/clients)")
    done = subprocess.run(
        ["node", "umami.mjs", json.dumps({"hostUrl": host_url, "websiteId": website, "sends": sends})],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    return answers


def stored_events(db, site_id: str, count: int) -> list[dict[str, Any]]:
    """The site's stored events once `count` are there, oldest first."""
    events = db["events"]
    wait_until(lambda: events.count_documents({"site_id": site_id}) >= count, 30, f"{count} events")
    return list(events.find({"site_id": site_id}).sort("timestamp", 1))


def test_umami_node_events_are_counted_exactly(keyed, db):
    site, website = f"umami-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    flask(keyed.env, "site", "add", site, "--domain", "umami.test", "--umami-id", website)
    # The registry snapshot takes the new site within its refresh interval.
    probe = {"type": "identify", "payload": {"website": website, "data": {}}}
    wait_until(
        lambda: requests.post(f"{keyed.ingestion}/api/send", json=probe, timeout=TIMEOUT).ok, 10, "the site"
    )
    page = {"hostname": "umami.test", "language": "en-GB", "screen": "1920x1080"}
    sends: list[dict[str, Any]] = [
        {"track": {**page, "url": "/", "title": "Home", "referrer": "https://search.test/?q=umami"}},
        {"track": {**page, "url": "/pricing?plan=pro", "title": "Pricing"}},
        {"name": "signup", "data": {"plan": "pro", "seats": 3}},
        {"identify": {"plan": "pro"}},
        {"track": {**page, "url": "/docs", "title": "Docs"}},
    ]
    answers = run_umami_node(keyed.ingestion, website, sends)
    assert answers == [{"status": 200, "body": {"ok": True}}] * len(sends)
    events = stored_events(db, site, 4)
    assert [(event["event_type"], event.get("path")) for event in events] == [
        ("page_view", "/"),
        ("page_view", "/pricing"),
        ("signup", None),
        ("page_view", "/docs"),
    ]
    home, _, signup, _ = events
    assert {name: home.get(name) for name in PAGE} == {
        "url": "https://umami.test/",
        "referrer": "https://search.test/?q=umami",
        "title": "Home",
        "screen": "1920x1080",
        "language": "en-GB",
    }
    assert signup["props"] == {"plan": "pro", "seats": 3}
    assert not any(name in event for event in events for name in ("ip", "user_agent"))
    unknown = run_umami_node(keyed.ingestion, str(uuid.uuid4()), [{"track": {"url": "/"}}])
    assert unknown == [
        {
            "status": 400,
            "body": {"error": {"message": "Website not found.", "code": "bad-request", "status": 400}},
        }
    ]
    assert db["events"].count_documents({"site_id": site}) == 4


def test_segment_python_events_are_counted_exactly(keyed, db):
    site = f"segment-{uuid.uuid4().hex[:8]}"
    flask(keyed.env, "site", "add", site, "--domain", "segment.test")
    write_key = flask(keyed.env, "key", "create", site, "--server").splitlines()[-1]
    probe = {"batch": [{"type": "identify", "userId": "probe"}]}
    wait_until(
        lambda: (
            requests.post(f"{keyed.ingestion}/v1/batch", json=probe, auth=(write_key, ""), timeout=TIMEOUT).ok
        ),
        10,
        "the site's server key",
    )
    errors: list[Exception] = []
    client = Client(
        write_key, host=keyed.ingestion, gzip=True, sync_mode=True, on_error=lambda e, _: errors.append(e)
    )
    visitor = {
        "ip": "203.0.113.7",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    }
    client.page(
        anonymous_id="anon-1",
        properties={
            "url": "https://segment.test/pricing?plan=pro",
            "title": "Pricing",
            "referrer": "https://search.test/",
        },
        context=visitor,
    )
    client.track("user-1", "Signed Up", {"plan": "pro", "seats": 3}, context=visitor)
    # Sent twice with one messageId (not a UUID): stored once.
    for _ in range(2):
        client.track("user-1", "Upgraded", {"plan": "team"}, message_id="upgrade-of-user-1")
    client.identify("user-1", {"plan": "team"})
    client.page("user-1", properties={"url": "https://segment.test/docs"})
    assert errors == []
    events = stored_events(db, site, 4)
    assert [(event["event_type"], event.get("path"), event["user_id"]) for event in events] == [
        ("page_view", "/pricing", "anon-1"),
        ("Signed Up", None, "user-1"),
        ("Upgraded", None, "user-1"),
        ("page_view", "/docs", "user-1"),
    ]
    page, signed_up, _, _ = events
    assert {name: page.get(name) for name in PAGE} == {
        "url": "https://segment.test/pricing?plan=pro",
        "referrer": "https://search.test/",
        "title": "Pricing",
        "screen": None,
        "language": None,
    }
    assert signed_up["props"] == {"plan": "pro", "seats": 3}
    assert not any(name in event for event in events for name in ("ip", "user_agent"))
    stranger = Client("sk_unknown", host=keyed.ingestion, sync_mode=True)
    with pytest.raises(APIError) as refused:  # in sync mode the SDK raises what it would log
        stranger.track("user-1", "Signed Up")
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    assert db["events"].count_documents({"site_id": site}) == 4
