"""HTTP endpoints of the reporting service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError
from pymongo.database import Database
from pymongo.errors import PyMongoError
from werkzeug.exceptions import ServiceUnavailable

from app import broker, counters, storage
from app.errors import error_response
from app.extensions import mongo, redis_store
from reporting.queries import DaySummary, summary_from_events, summary_from_pipelines
from reporting.schemas import stats_query_schema

bp = Blueprint("reporting", __name__)

MISSING_PARAMETERS = "Missing required parameters: site_id, date (YYYY-MM-DD)"

Summarise = Callable[[Database[Any], str, date], DaySummary]


def site_day_query() -> dict[str, Any]:
    """The `site_id` and `date` parameters, or the contract's 400."""
    try:
        query: dict[str, Any] = stats_query_schema.load(request.args)
    except ValidationError as error:
        abort(error_response(400, MISSING_PARAMETERS, error.normalized_messages()))
    return query


def _stats_response(summarise: Summarise) -> ResponseReturnValue:
    query = site_day_query()
    summary = summarise(mongo.db, query["site_id"], query["date"])
    body = asdict(summary)
    body["date"] = summary.date.isoformat()
    return jsonify(body)


@bp.get("/stats")
def stats() -> ResponseReturnValue:
    return _stats_response(summary_from_events)


@bp.get("/stats/aggregated")
def stats_aggregated() -> ResponseReturnValue:
    return _stats_response(summary_from_pipelines)


@bp.get("/health/pipeline")
def pipeline_health() -> ResponseReturnValue:
    """Queue depth, unacknowledged messages, the oldest message's age and the event counts.

    With `site_id` and `date`, the counts are that site's on that UTC day.
    """
    client = redis_store.client
    if request.args.get("site_id") or request.args.get("date"):
        query = site_day_query()
        counts = counters.for_site_day(client, query["site_id"], query["date"].isoformat())
    else:
        counts = counters.totals(client)
    queue = broker.snapshot(client)
    dead = storage.count_dead_letters(mongo.db)
    return jsonify(
        status="ok",
        queue=asdict(queue),
        events={
            "accepted": counts.accepted,
            "persisted": counts.persisted,
            "dead": dead,
            # Queued, in flight, or a client's retry of an event already stored.
            "unaccounted": counts.accepted - counts.persisted - dead,
        },
    )


@bp.get("/health")
def health() -> Response:
    try:
        mongo.client.admin.command("ping")
    except PyMongoError:
        raise ServiceUnavailable("MongoDB is unreachable") from None
    return jsonify(status="ok", service="reporting-service")
