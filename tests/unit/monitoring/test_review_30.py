"""Review of issue #30 (review-30): findings shown as failing tests. Each test states what the
issue or the docs promise; each fails on main as of 74d12d1."""

from __future__ import annotations

import pytest

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
