"""Review of issue #30 (review-30): findings shown as failing tests. Each test states what the
issue or the docs promise; each fails on main as of 74d12d1."""

from __future__ import annotations

from unittest import mock

import pytest
from kombu.exceptions import OperationalError

from tests.metrics import value
from tests.unit.monitoring.scrape import scrape

REQUESTS = "analytics_http_requests_total"


def series(samples, name: str) -> set:
    return {labels for sample, labels in samples if sample == name}


@pytest.mark.parametrize("service", ["ingestion", "reporting"])
def test_a_client_cannot_add_request_series_by_inventing_methods(request, service):
    """A label must not take values a client chooses (the issue: "unbounded label
    cardinality"). gunicorn accepts any upper-case token of 3 to 20 characters as a method, and
    `analytics_http_requests_total` labels each request with `request.method` as sent: every
    new method is a new series in each process's file and in the per-process `series` cache
    (app/monitoring/requests.py), for ever."""
    client = request.getfixturevalue(service)
    before = series(scrape(client), REQUESTS)
    for n in range(50):
        client.open("/", method=f"X{n:04d}")
    after = series(scrape(client), REQUESTS)
    assert len(after - before) <= 2, sorted(dict(labels)["method"] for labels in after - before)[:5]


REFUSED = "analytics_events_refused_total"
PLAUSIBLE_PAGE = {"n": "pageview", "u": "https://shop.test/pricing", "d": "shop.test"}


def test_events_the_drop_in_endpoints_cannot_queue_are_counted_as_refused(ingestion, monkeypatch):
    """docs/monitoring.md: `analytics_events_refused_total` counts the events ingestion did not
    accept, by reason, and `AnalyticsIngestionRefusing` alerts on `queue_unavailable`. The
    drop-in endpoints (Plausible's `/api/event`, Umami's `/api/send`, Segment's `/v1/*`)
    count what they accept (`queue_events`) but never what they refuse: they do not go
    through `outcomes.counted` (app/ingestion/plausible.py, umami.py, segment.py)."""
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
