"""Each request counted and timed (app/monitoring/metrics.py), and given a request id that its
log lines, its answer's `X-Request-ID` and the queue messages of its events carry."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram

from app.monitoring import metrics, request_ids

UNMATCHED = "unmatched"
# gunicorn accepts any upper-case token as a method: one a client invents must not become a
# series of its own, kept in every process's file for ever.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"


Series = tuple[Counter, Histogram]


def init_app(app: Flask, service: str) -> None:
    # Each (route, method, status)'s two series, found once: `labels()` takes a lock and
    # builds a key on every call, a measurable share of what counting a request costs.
    series: dict[tuple[str, str, int], Series] = {}

    def series_of(endpoint: str, method: str, status: int) -> Series:
        found = series.get((endpoint, method, status))
        if found is None:
            found = series[endpoint, method, status] = (
                metrics.REQUESTS.labels(service, endpoint, method, str(status)),
                metrics.LATENCY.labels(service, endpoint),
            )
        return found

    def start() -> None:
        g.started = time.perf_counter()
        g.request_id_token = request_ids.enter(
            request_ids.from_header(request.headers.get(request_ids.HEADER))
        )

    def finish(response: Response) -> Response:
        # A route's rule, not its URL: a label per path a client invents would grow forever.
        endpoint = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        method = request.method if request.method in METHODS else OTHER_METHOD
        requests, latency = series_of(endpoint, method, response.status_code)
        requests.inc()
        latency.observe(time.perf_counter() - g.get("started", time.perf_counter()))
        response.headers[request_ids.HEADER] = ",".join(request_ids.current())
        return response

    def leave(_: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_ids.leave(token)

    app.before_request(start)
    app.after_request(finish)
    app.teardown_request(leave)
