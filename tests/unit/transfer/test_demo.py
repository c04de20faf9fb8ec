"""`flask seed-demo`'s traffic: valid, varied and repeatable events."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from app.ingestion.schemas import TimeWindow, to_message
from app.transfer import sender
from app.transfer.demo import BOTS, demo_events

NOW = datetime(2026, 3, 18, 15, 30, tzinfo=UTC)


def test_the_same_seed_on_the_same_day_gives_the_same_events():
    assert list(demo_events("demo", 7, NOW, seed=3)) == list(demo_events("demo", 7, NOW, seed=3))
    assert list(demo_events("demo", 7, NOW, seed=3)) != list(demo_events("demo", 7, NOW, seed=4))


def test_every_event_is_one_ingestion_takes_within_its_window():
    window = TimeWindow.around(NOW, 30, 300)
    events = list(demo_events("demo", 30, NOW, per_day=30))
    for event in events:
        to_message(event, window)
    assert len({event["event_id"] for event in events}) == len(events)
    assert max(event["timestamp"] for event in events) <= NOW.isoformat()


def test_the_traffic_has_sources_devices_bounces_navigations_custom_events_and_bots():
    events = list(demo_events("demo", 14, NOW))
    referrers = {event.get("referrer") for event in events}
    assert {"https://www.google.com/", "https://news.ycombinator.com/", None} <= referrers
    assert any("utm_campaign=launch" in event["url"] for event in events)
    user_agents = {event["user_agent"] for event in events}
    assert any("iPhone" in agent for agent in user_agents)
    assert any("Android" in agent for agent in user_agents)
    assert any("Windows NT" in agent for agent in user_agents)
    # Navigations in the app: the previous page of the same site as the referrer.
    assert any(event.get("referrer", "").startswith("https://demo.example/") for event in events)
    custom = [event for event in events if event["event_type"] != "page_view"]
    assert {event["event_type"] for event in custom} == {"signup", "download", "outbound_click"}
    assert all(event["props"] for event in custom)
    assert any(event["user_agent"] in BOTS for event in events)
    by_visitor: dict[str, int] = {}
    for event in events:
        by_visitor[event["ip"]] = by_visitor.get(event["ip"], 0) + 1
    assert 1 in by_visitor.values()  # a visitor who bounced and never came back


class FlakyIngestion(BaseHTTPRequestHandler):
    """Answers the first batch with a 429, then accepts every batch; remembers the bodies."""

    bodies: ClassVar[list[list[dict]]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        if len(self.bodies) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            answer: dict[str, object] = {"status": "error", "message": "slow down"}
        else:
            self.send_response(200)
            answer = {"status": "accepted", "accepted": len(body), "rejected": 0, "errors": {}}
        data = json.dumps(answer).encode()
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_ingestion():
    FlakyIngestion.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyIngestion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_rate_limited_batch_is_sent_again_as_it_was(flaky_ingestion):
    events = [{"n": n} for n in range(5)]
    sent = sender.send_events(flaky_ingestion, events, batch_size=3, sleep=lambda seconds: None)
    assert (sent.accepted, sent.rejected) == (5, 0)
    assert FlakyIngestion.bodies == [events[:3], events[:3], events[3:]]


class RecordingIngestion(BaseHTTPRequestHandler):
    """Accepts every batch; remembers each request's headers and events."""

    requests: ClassVar[list[tuple[dict[str, str], list[dict]]]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((dict(self.headers), body))
        data = json.dumps({"status": "accepted", "accepted": len(body), "rejected": 0, "errors": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_seed_demo_posts_as_a_server_with_the_server_key(ingestion_app):
    RecordingIngestion.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingIngestion)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        args = ["seed-demo", "demo", "--days", "2", "--visits-per-day", "5", "--url", url]
        args += ["--server-key", "sk_1"]
        result = ingestion_app.test_cli_runner().invoke(args=args)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    sent = sum(len(events) for _, events in RecordingIngestion.requests)
    assert f"{sent} events accepted, 0 refused" in result.output
    for headers, _ in RecordingIngestion.requests:
        assert headers["Authorization"] == "Bearer sk_1"
        assert "Origin" not in headers


def test_seed_demo_keeps_within_the_window_of_live_events(ingestion_app):
    days = ingestion_app.extensions["settings"].event_max_age_days + 1
    result = ingestion_app.test_cli_runner().invoke(args=["seed-demo", "demo", "--days", str(days)])
    assert result.exit_code == 2
    assert "EVENT_MAX_AGE_DAYS" in result.output
