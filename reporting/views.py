"""HTTP endpoints of the reporting service."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pymongo
import redis
from flask import Blueprint, Response, abort, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, ValidationError
from pymongo.errors import PyMongoError
from werkzeug.exceptions import ServiceUnavailable

from app.access.guard import operators_only, public, require_read_key, site_in_body
from app.extensions import mongo, redis_store
from app.ingestion import backpressure, bots
from app.monitoring.exposition import metrics_response
from app.queue import counters, snapshot
from app.rollups import compactor, realtime
from app.settings import current_settings
from app.store import dead_letters
from app.store import events as event_store
from app.web.errors import error_response
from app.web.openapi import serve_document
from reporting import comparison, openapi, plausible_answers, plausible_query, queries
from reporting.cache import cached, refuse_repeated_parameters
from reporting.periods import Period
from reporting.pipeline import PipelineCollector, lag_seconds
from reporting.schemas import (
    aggregated_query_schema,
    breakdown_query_schema,
    site_day_schema,
    site_query_schema,
    stats_query_schema,
    timeseries_query_schema,
)

Answer = TypeVar("Answer")

bp = Blueprint("reporting", __name__)
# Every endpoint needs a read key (AUTH_MODE=keys) unless marked @public.
bp.before_request(require_read_key)
# One value per parameter, so that a cache key names one question.
bp.before_request(refuse_repeated_parameters)
serve_document(bp, openapi.document)

MISSING_PARAMETERS = "Missing required parameters: site_id, date (YYYY-MM-DD)"
# Parameters whose errors get the contract's MISSING_PARAMETERS message.
PERIOD_PARAMETERS = {"site_id", "date", "start", "end"}


def load_query(schema: Schema) -> dict[str, Any]:
    """The request's parameters loaded by `schema`, or a 400 in the contract's shape."""
    try:
        query: dict[str, Any] = schema.load(request.args)
    except ValidationError as error:
        errors = error.normalized_messages()
        if PERIOD_PARAMETERS & errors.keys():
            message = MISSING_PARAMETERS
        else:
            message = f"Invalid parameters: {', '.join(sorted(errors))}"
        abort(error_response(400, message, errors))
    return query


def describe(period: Period) -> dict[str, Any]:
    """The period as the answer echoes it: `date`, or `start` and `end`; `tz` and
    `event_type` when asked for."""
    body: dict[str, Any] = {"site_id": period.site_id}
    if period.first_day == period.last_day and "date" in request.args:
        body["date"] = period.first_day.isoformat()
    else:
        body["start"], body["end"] = period.first_day.isoformat(), period.last_day.isoformat()
    if "tz" in request.args:
        body["tz"] = period.tz.key
    if period.event_type is not None:
        body["event_type"] = period.event_type
    if period.filters:
        body["filters"] = request.args["filters"]
    return body


def origin(period: Period, source: str) -> dict[str, str]:
    """Where a filtered answer came from (`rollups` or `events`); nothing for another."""
    return {"from": source} if period.filters else {}


# The figures whose change a comparison gives: of `/stats`, and of each point of a series.
SUMMARY_FIGURES = ("total_views", "unique_users")
POINT_FIGURES = ("views", "unique_users")


def against(compare: str, other: Period, source: str) -> dict[str, Any]:
    """The head of a `comparison`: what it compares with, that period's days, and (with
    filters) where its answer came from."""
    days = {"start": other.first_day.isoformat(), "end": other.last_day.isoformat()}
    return {"compare": compare} | days | origin(other, source)


class QueryTimeLimitError(Exception):
    """A question's MongoDB operations outlasted REPORTING_QUERY_SECONDS."""


def within_time_limit(compute: Callable[[], Answer]) -> Answer:
    """`compute()`, its MongoDB operations bounded together by REPORTING_QUERY_SECONDS (sent to
    the server as maxTimeMS), so that no question holds a worker for long."""
    if not mongo.client.topology_description.has_readable_server():
        # Under a time bound pymongo waits that long for a server, not MONGO_TIMEOUT_MS: with
        # none known yet (a new process, or MongoDB away), find one first within the usual
        # timeout, or fail with the plain 503 of a database away.
        mongo.client.admin.command("ping")
    limit = current_settings().reporting_query_seconds
    started = time.monotonic()
    try:
        with pymongo.timeout(limit):
            return compute()
    except PyMongoError as error:
        # A timeout before the limit is the server away (e.g. server selection): a plain 503.
        if error.timeout and time.monotonic() - started >= limit:
            raise QueryTimeLimitError(f"took longer than {limit} s") from error
        raise


@bp.errorhandler(queries.TooManyEventsError)
def too_many_events(error: queries.TooManyEventsError) -> Response:
    return error_response(400, str(error), {"filters": [str(error)]})


@bp.errorhandler(QueryTimeLimitError)
def query_time_limit_exceeded(_: QueryTimeLimitError) -> Response:
    return error_response(503, "The question took longer than its time limit: ask about a shorter period")


def cached_response(period: Period, compute: Callable[[], dict[str, Any]]) -> Response:
    body, hit = cached(period, lambda: within_time_limit(compute))
    response = jsonify(body)
    response.headers["X-Cache"] = "hit" if hit else "miss"
    return response


@bp.get("/stats")
def stats() -> ResponseReturnValue:
    query = load_query(stats_query_schema)
    period = query["period"]

    def compute() -> dict[str, Any]:
        found = queries.summary(mongo.db, period, query["limit"])
        body = describe(period) | found.body() | origin(period, found.source)
        if "compare" in query:
            other = comparison.other_period(period, query["compare"])
            before = queries.summary(mongo.db, other, query["limit"])
            figures = comparison.changes(body, before.body(), SUMMARY_FIGURES)
            body["comparison"] = (
                against(query["compare"], other, before.source) | before.body() | {"change": figures}
            )
        return body

    return cached_response(period, compute)


@bp.get("/stats/aggregated")
def stats_aggregated() -> ResponseReturnValue:
    """Computed from the raw events on every call: the cross-check of `/stats`, never cached;
    with `by`, and of `/stats/breakdown`'s first `limit` rows."""
    query = load_query(aggregated_query_schema)
    period, limit, by = query["period"], query["limit"], query.get("by")

    def compute() -> dict[str, Any]:
        body = queries.summary_from_pipeline(mongo.db, period, limit).body() | origin(period, queries.EVENTS)
        if by is None:
            return body
        rows = queries.breakdown_from_events(mongo.db, period, by, limit)
        return body | {"by": by, "results": [asdict(row) for row in rows]}

    return jsonify(describe(period) | within_time_limit(compute))


@bp.get("/stats/timeseries")
def stats_timeseries() -> ResponseReturnValue:
    query = load_query(timeseries_query_schema)
    period, interval = query["period"], query["interval"]

    def compute() -> dict[str, Any]:
        found = queries.timeseries(mongo.db, period, interval)
        points = [asdict(point) for point in found.points]
        beyond_caps = queries.others("other_event_types", found.other_event_types)
        body = (
            describe(period)
            | {"interval": interval, "series": points}
            | beyond_caps
            | origin(period, found.source)
        )
        if "compare" in query:
            other = comparison.other_period(period, query["compare"])
            before = queries.timeseries(mongo.db, other, interval)
            before_points = [asdict(point) for point in before.points]
            body["comparison"] = (
                against(query["compare"], other, before.source)
                | {"series": before_points}
                | queries.others("other_event_types", before.other_event_types)
                | {"change": comparison.aligned_changes(points, before_points, POINT_FIGURES)}
            )
        return body

    return cached_response(period, compute)


def beyond_caps(found: queries.Breakdown) -> dict[str, Any]:
    return queries.others("other", found.other) | queries.others("other_event_types", found.other_event_types)


@bp.get("/stats/breakdown")
def stats_breakdown() -> ResponseReturnValue:
    query = load_query(breakdown_query_schema)
    period, by, limit, offset = query["period"], query["by"], query["limit"], query["offset"]

    def compute() -> dict[str, Any]:
        found = queries.breakdown(mongo.db, period, by, limit, offset)
        page = {"by": by, "total": found.total, "limit": limit, "offset": offset}
        results = {"results": [asdict(row) for row in found.results]}
        body = describe(period) | page | results | beyond_caps(found) | origin(period, found.source)
        if "compare" in query:
            other = comparison.other_period(period, query["compare"])
            before = queries.every_row(mongo.db, other, by)
            views = {row.value: row.views for row in before.results}
            for row in body["results"]:
                then = views.get(row["value"], 0)
                row["comparison"] = {"views": then, "change": comparison.change(row["views"], then)}
            body["comparison"] = (
                against(query["compare"], other, before.source)
                | {"total": before.total}
                | beyond_caps(before)
            )
        return body

    return cached_response(period, compute)


@bp.post("/api/v2/query")
@site_in_body
def query_api() -> ResponseReturnValue:
    """A subset of Plausible's Stats API v2 (docs/query-api.md); never cached."""
    request_body = request.get_json(silent=True)
    today = datetime.now(UTC).date()

    def first_day(site_id: str) -> date:
        first = event_store.first_event_time(mongo.db, site_id)
        return today if first is None else first.astimezone(UTC).date()

    try:
        query = plausible_query.read_query(request_body, plausible_answers.METRICS, today, first_day)
    except plausible_query.QueryError as error:
        return error_response(400, str(error), {error.key: [str(error)]})

    def compute() -> dict[str, Any]:
        return plausible_answers.body(query, plausible_answers.answer(mongo.db, query))

    return jsonify(within_time_limit(compute))


@bp.get("/stats/realtime")
def stats_realtime() -> ResponseReturnValue:
    """Events and distinct users of the last five minutes, from Redis; never cached."""
    site_id = load_query(site_query_schema)["site_id"]
    recent = realtime.recent(redis_store.client, site_id, current_settings().event_max_ahead_seconds)
    return jsonify(
        site_id=site_id,
        window_seconds=realtime.WINDOW_SECONDS,
        events=recent.events,
        unique_users=recent.unique_users,
        **({"capped": True} if recent.capped else {}),
    )


@bp.get("/health/pipeline")
@operators_only
def pipeline_health() -> ResponseReturnValue:
    """Queue depth, unacknowledged messages, the oldest message's age, the event counts, the
    deltas stored but not yet in the rollups, and the end-to-end lag: how long ago the oldest
    accepted event that `/stats` does not count yet was accepted (or stored, once it waits
    only for the rollups).

    With `site_id` and `date`, the counts are that site's on that UTC day.
    """
    client = redis_store.client
    if request.args.get("site_id") or request.args.get("date"):
        period = load_query(site_day_schema)["period"]
        day = period.first_day.isoformat()
        counts = counters.for_site_day(client, period.site_id, day)
        dead = dead_letters.count_dead_letters(mongo.db, period.site_id, day)
        dropped = bots.dropped_on(client, period.site_id, day)
    else:
        counts = counters.totals(client)
        dead = dead_letters.count_dead_letters(mongo.db)
        dropped = bots.dropped_totals(client)
    queue = snapshot.snapshot(client)
    return jsonify(
        status="ok",
        queue=asdict(queue),
        events={
            "accepted": counts.accepted,
            "persisted": counts.persisted,
            "repeated": counts.repeated,
            "dead": dead,
            # Queued or in flight (see app/queue/counters.py).
            "unaccounted": counts.accepted - counts.persisted - counts.repeated - dead,
        },
        # Answered as accepted, never queued: not among `events`.
        bots_dropped=dropped,
        rollups={"backlog": compactor.backlog(client), "set_aside": compactor.set_aside(client)},
        lag_seconds=lag_seconds(client),
        backpressure=ingestion_backpressure(client),
    )


def ingestion_backpressure(client: redis.Redis) -> dict[str, object]:
    """Why ingestion refuses events now, with the figures its public answers leave out."""
    settings = current_settings()
    return backpressure.state(client, settings.queue_high_water, settings.redis_memory_high_water)


@bp.get("/metrics")
@operators_only
def metrics() -> Response:
    """Prometheus text: every process's request metrics and the pipeline's gauges."""
    return metrics_response([PipelineCollector(lambda: redis_store.client, lambda: mongo.db)])


@bp.get("/health")
@public
def health() -> Response:
    try:
        mongo.client.admin.command("ping")
    except PyMongoError:
        raise ServiceUnavailable("MongoDB is unreachable") from None
    return jsonify(status="ok", service="reporting-service")
