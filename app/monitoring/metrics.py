"""The services' Prometheus metrics, counted in each gunicorn process.

Under gunicorn the processes write their values to files in PROMETHEUS_MULTIPROC_DIR, which
gunicorn.conf.py sets before anything imports prometheus_client, and `/metrics` adds them up
(app/monitoring/exposition.py). Names start with `analytics_`; docs/operations.md lists them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "analytics_http_requests_total",
    "HTTP requests answered, by service, endpoint (the route, or `unmatched`), method (`other`"
    " for one outside HTTP's usual seven) and status.",
    ["service", "endpoint", "method", "status"],
)
# From a cached reading in a millisecond to a question near REPORTING_QUERY_SECONDS.
LATENCY = Histogram(
    "analytics_http_request_duration_seconds",
    "Time from the request's first hook to its response, by service and endpoint.",
    ["service", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
# By endpoint (`/event`, `/events`): a labelled series shows only once used, so reporting,
# which imports this module too, exposes no ingestion counter stuck at 0.
EVENTS_ACCEPTED = Counter(
    "analytics_events_accepted_total", "Events ingestion put on the queue, by endpoint.", ["endpoint"]
)
EVENTS_REFUSED = Counter(
    "analytics_events_refused_total",
    "Events ingestion did not accept, by reason (docs/operations.md lists them).",
    ["reason"],
)
# Answered as accepted and never queued (docs/visitors.md#bots): neither accepted nor refused.
BOTS_DROPPED = Counter(
    "analytics_bots_dropped_total", "Bots' events ingestion dropped, by reason.", ["reason"]
)
