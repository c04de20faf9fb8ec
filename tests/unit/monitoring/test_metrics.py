"""`/metrics` on both services: requests by route and status, events by outcome, the
pipeline's gauges, and an operator's key to read them (AUTH_MODE=keys).

The process's registry outlives a test, so counters are compared before and after."""

from unittest import mock

import pytest
from kombu.exceptions import OperationalError
from pymongo.errors import ServerSelectionTimeoutError

from tests.metrics import value
from tests.unit.monitoring.scrape import scrape
from tools.factories import make_event

ACCEPTED = "analytics_events_accepted_total"
REFUSED = "analytics_events_refused_total"
REQUESTS = "analytics_http_requests_total"
PLAUSIBLE_PAGE = {"n": "pageview", "u": "https://shop.test/pricing", "d": "shop.test"}


def series(samples, name: str) -> set:
    return {labels for sample, labels in samples if sample == name}


def test_ingestion_counts_events_accepted_and_refused_by_reason(ingestion):
    before = scrape(ingestion)
    batch = [make_event(path="/a"), make_event(path="/b"), make_event(path="/c"), {"site_id": "x"}]
    assert ingestion.post("/events", json=batch).status_code == 200
    assert ingestion.post("/event", json={"site_id": "x"}).status_code == 400
    assert ingestion.post("/event", json=make_event()).status_code == 200
    after = scrape(ingestion)
    assert value(after, ACCEPTED, endpoint="/events") - value(before, ACCEPTED, endpoint="/events") == 3
    assert value(after, ACCEPTED, endpoint="/event") - value(before, ACCEPTED, endpoint="/event") == 1
    assert value(after, REFUSED, reason="invalid") - value(before, REFUSED, reason="invalid") == 2


def test_events_the_queue_cannot_take_are_refused_as_queue_unavailable(ingestion, monkeypatch):
    before = scrape(ingestion)
    refused = OperationalError("Connection refused.")
    monkeypatch.setattr("tasks.persist.persist_events.apply_async", mock.Mock(side_effect=refused))
    assert ingestion.post("/events", json=[make_event(), make_event(path="/b")]).status_code == 503
    after = scrape(ingestion)
    reason = {"reason": "queue_unavailable"}
    assert value(after, REFUSED, **reason) - value(before, REFUSED, **reason) == 2


def test_a_request_is_counted_by_its_route_status_and_method_not_its_url(ingestion):
    before = scrape(ingestion)
    ingestion.get("/no/such/page-1")
    ingestion.get("/no/such/page-2")
    ingestion.post("/event", json={"site_id": "x"})
    after = scrape(ingestion)
    unmatched = {"service": "ingestion", "endpoint": "unmatched", "method": "GET", "status": "404"}
    invalid = {"service": "ingestion", "endpoint": "/event", "method": "POST", "status": "400"}
    assert value(after, REQUESTS, **unmatched) - value(before, REQUESTS, **unmatched) == 2
    assert value(after, REQUESTS, **invalid) - value(before, REQUESTS, **invalid) == 1
    latency = "analytics_http_request_duration_seconds_count"
    assert value(after, latency, service="ingestion", endpoint="/event") > 0
    assert not [name for name, labels in after if "page-1" in str(labels)]


def test_reporting_shows_the_pipeline_as_gauges_read_when_scraped(ingestion, reporting):
    before = scrape(reporting)
    assert ingestion.post("/events", json=[make_event(), make_event(path="/b")]).status_code == 200
    after = scrape(reporting)
    stage = {"stage": "accepted"}
    assert (
        value(after, "analytics_pipeline_events_total", **stage)
        - value(before, "analytics_pipeline_events_total", **stage)
        == 2
    )
    assert value(after, "analytics_pipeline_up", store="redis") == 1
    assert value(after, "analytics_pipeline_up", store="mongodb") == 1
    for gauge in (
        "analytics_queue_depth",
        "analytics_batches_unsettled",
        "analytics_batches_oldest_unsettled_age_seconds",
        "analytics_lag_seconds",
        "analytics_rollup_backlog",
        "analytics_dead_letters",
        "analytics_redis_used_memory_bytes",
    ):
        assert (gauge, frozenset()) in after, gauge


def test_reporting_still_answers_a_scrape_while_redis_is_away(reporting, redis_server):
    redis_server.connected = False
    samples = scrape(reporting)
    assert value(samples, "analytics_pipeline_up", store="redis") == 0
    assert ("analytics_queue_depth", frozenset()) not in samples
    assert value(samples, "analytics_pipeline_up", store="mongodb") == 1
    assert ("analytics_dead_letters", frozenset()) in samples


def test_reporting_keeps_redis_gauges_while_mongodb_is_away(reporting):
    away = ServerSelectionTimeoutError("mongo-1:27017: [Errno 111] Connection refused")
    with mock.patch("app.store.dead_letters.count_dead_letters", side_effect=away):
        samples = scrape(reporting)
    assert value(samples, "analytics_pipeline_up", store="mongodb") == 0
    assert ("analytics_dead_letters", frozenset()) not in samples
    assert value(samples, "analytics_pipeline_up", store="redis") == 1
    assert ("analytics_queue_depth", frozenset()) in samples


def test_bots_dropped_are_counted_by_reason_and_neither_accepted_nor_refused(ingestion):
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    headers = {"Origin": "https://shop.test", "User-Agent": googlebot}
    before = scrape(ingestion)
    assert ingestion.post("/event", json=make_event(), headers=headers).status_code == 200
    assert ingestion.post("/events", json=[make_event(), make_event()], headers=headers).status_code == 200
    after = scrape(ingestion)
    dropped = "analytics_bots_dropped_total"
    assert value(after, dropped, reason="crawler") - value(before, dropped, reason="crawler") == 3
    assert value(after, ACCEPTED, endpoint="/event") == value(before, ACCEPTED, endpoint="/event")
    assert value(after, REFUSED, reason="invalid") == value(before, REFUSED, reason="invalid")


@pytest.mark.parametrize("service", ["ingestion", "reporting"])
def test_a_client_cannot_add_request_series_by_inventing_methods(request, service):
    """gunicorn accepts any upper-case token of 3 to 20 characters as a method: each must not
    become a series of its own, in every process's file, for ever."""
    client = request.getfixturevalue(service)
    before = series(scrape(client), REQUESTS)
    for n in range(50):
        client.open("/", method=f"X{n:04d}")
    after = series(scrape(client), REQUESTS)
    assert len(after - before) <= 2, sorted(dict(labels)["method"] for labels in after - before)[:5]


def test_events_the_drop_in_endpoints_cannot_queue_are_counted_as_refused(ingestion, monkeypatch):
    before = scrape(ingestion)
    refused = OperationalError("Connection refused.")
    monkeypatch.setattr("tasks.persist.persist_events.apply_async", mock.Mock(side_effect=refused))
    answer = ingestion.post(
        "/api/event", json=PLAUSIBLE_PAGE, headers={"User-Agent": "Mozilla/5.0 Firefox/133.0"}
    )
    assert answer.status_code == 503, answer.get_data(as_text=True)
    after = scrape(ingestion)
    reason = {"reason": "queue_unavailable"}
    assert value(after, REFUSED, **reason) - value(before, REFUSED, **reason) == 1
