"""The reporting service's OpenAPI document: its routes, their query parameters from the
schemas that load them, and their answers."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.ingestion import bots
from app.web.openapi import (
    AnswerSchema,
    build_document,
    error_responses,
    health_operation,
    json_response,
    metrics_operation,
)
from reporting import comparison, plausible_query
from reporting.schemas import (
    BREAKDOWNS,
    AggregatedQuerySchema,
    BreakdownQuerySchema,
    EventExportQuerySchema,
    PeriodQuerySchema,
    SiteQuerySchema,
    StatsQuerySchema,
    TimeseriesQuerySchema,
)

# What a question about a site's data can meet (401 and 403 come with AUTH_MODE=keys).
QUESTION_ERRORS = (400, 401, 403, 429, 503)


def answered_from() -> fields.String:
    return fields.String(
        data_key="from",
        validate=validate.OneOf(["rollups", "events"]),
        metadata={"description": "Only with filters: whether the rollups or the raw events answered."},
    )


class PeriodAnswerSchema(AnswerSchema):
    """The question echoed: `date`, or `start` and `end`; `tz`, `event_type` and `filters`
    when asked."""

    site_id = fields.String(required=True)
    date = fields.Date()
    start = fields.Date()
    end = fields.Date()
    tz = fields.String()
    event_type = fields.String()
    filters = fields.String()
    source = answered_from()


class PathViewsSchema(AnswerSchema):
    path = fields.String(required=True)
    views = fields.Integer(required=True)


class ViewsSchema(AnswerSchema):
    views = fields.Integer(required=True)


def beyond_caps(what: str) -> fields.Nested:
    """A field an answer has only when the rollups set views apart beyond their caps."""
    return fields.Nested(ViewsSchema, metadata={"description": f"Only beyond the rollups' caps: {what}."})


OTHER_EVENT_TYPES = (
    "with event_type, events of types the rollups did not keep (they may include the type asked for)"
)


def percent_change(of: str) -> fields.Float:
    return fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": f"The change of {of} in percent, to one decimal; null when the other had none."
        },
    )


class ComparedPeriodSchema(AnswerSchema):
    """The period a `comparison` is about, and where its answer came from."""

    compare = fields.String(required=True, validate=validate.OneOf(comparison.COMPARISONS))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    source = answered_from()


class SummaryFiguresSchema(AnswerSchema):
    total_views = fields.Integer(required=True)
    unique_users = fields.Integer(required=True)
    top_paths = fields.List(fields.Nested(PathViewsSchema), required=True)
    other_paths = beyond_caps("views of paths the rollups did not keep, counted in total_views")
    other_event_types = beyond_caps(OTHER_EVENT_TYPES)


class SummaryChangeSchema(AnswerSchema):
    total_views = percent_change("total_views")
    unique_users = percent_change("unique_users")


class StatsComparisonSchema(ComparedPeriodSchema, SummaryFiguresSchema):
    change = fields.Nested(SummaryChangeSchema, required=True)


def compared(schema: type[AnswerSchema]) -> fields.Nested:
    return fields.Nested(schema, metadata={"description": "Only with `compare`: the other period's answer."})


class StatsSchema(PeriodAnswerSchema, SummaryFiguresSchema):
    comparison = compared(StatsComparisonSchema)


class PointSchema(AnswerSchema):
    start = fields.String(required=True, metadata={"description": "The bucket's first instant (ISO 8601)."})
    views = fields.Integer(required=True)
    unique_users = fields.Integer(required=True)


class PointChangeSchema(AnswerSchema):
    views = percent_change("views")
    unique_users = percent_change("unique_users")


class TimeseriesComparisonSchema(ComparedPeriodSchema):
    series = fields.List(fields.Nested(PointSchema), required=True)
    other_event_types = beyond_caps(OTHER_EVENT_TYPES)
    change = fields.List(
        fields.Nested(PointChangeSchema, allow_none=True),
        required=True,
        metadata={
            "description": "Per point of `series`, against the other period's point at its position; null "
            "where that has none."
        },
    )


class TimeseriesSchema(PeriodAnswerSchema):
    interval = fields.String(required=True, validate=validate.OneOf(["hour", "day"]))
    series = fields.List(fields.Nested(PointSchema), required=True)
    other_event_types = beyond_caps(OTHER_EVENT_TYPES)
    comparison = compared(TimeseriesComparisonSchema)


class RowComparisonSchema(AnswerSchema):
    views = fields.Integer(required=True)
    change = percent_change("views")


class RowSchema(AnswerSchema):
    value = fields.String(required=True)
    views = fields.Integer(required=True, metadata={"description": "By entry_page or exit_page: visits."})
    unique_users = fields.Integer(
        metadata={"description": "Only by entry_page or exit_page: the distinct visitors of those visits."}
    )
    comparison = fields.Nested(
        RowComparisonSchema,
        metadata={"description": "Only with `compare`: the value's views in the other period."},
    )


BY_DESCRIPTION = f"One of {', '.join(BREAKDOWNS)}, or prop:<key>."


OTHER = "views of the paths, event types or values of `by` the rollups did not keep"


class BreakdownComparisonSchema(ComparedPeriodSchema):
    total = fields.Integer(required=True)
    other = beyond_caps(OTHER)
    other_event_types = beyond_caps(OTHER_EVENT_TYPES)


class BreakdownSchema(PeriodAnswerSchema):
    by = fields.String(required=True, metadata={"description": BY_DESCRIPTION})
    total = fields.Integer(required=True)
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    results = fields.List(fields.Nested(RowSchema), required=True)
    other = beyond_caps(OTHER)
    other_event_types = beyond_caps(OTHER_EVENT_TYPES)
    comparison = compared(BreakdownComparisonSchema)


class AggregatedSchema(PeriodAnswerSchema, SummaryFiguresSchema):
    by = fields.String(metadata={"description": "Only when asked: " + BY_DESCRIPTION})
    results = fields.List(
        fields.Nested(RowSchema), metadata={"description": "With `by`: the breakdown's first `limit` rows."}
    )


class RealtimeSchema(AnswerSchema):
    site_id = fields.String(required=True)
    window_seconds = fields.Integer(required=True)
    events = fields.Integer(required=True)
    unique_users = fields.Integer(required=True)
    capped = fields.Boolean(
        metadata={"description": "Only when true: the site reached the sets' cap, the counts may be short."}
    )


class QueueSchema(AnswerSchema):
    depth = fields.Integer(required=True)
    unacknowledged = fields.Integer(required=True)
    oldest_age_seconds = fields.Float(required=True, allow_none=True)


class EventCountsSchema(AnswerSchema):
    accepted = fields.Integer(required=True)
    persisted = fields.Integer(required=True)
    repeated = fields.Integer(required=True)
    dead = fields.Integer(required=True)
    unaccounted = fields.Integer(required=True)


class RollupStateSchema(AnswerSchema):
    backlog = fields.Integer(required=True)
    set_aside = fields.Integer(required=True)


class BackpressureSchema(AnswerSchema):
    refusing = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Why ingestion refuses events now, with the figures; null: it does not."},
    )
    redis_used_memory = fields.Integer(required=True)
    redis_maxmemory = fields.Integer(required=True, metadata={"description": "0: no bound known."})


class PipelineSchema(AnswerSchema):
    status = fields.String(required=True)
    queue = fields.Nested(QueueSchema, required=True)
    events = fields.Nested(EventCountsSchema, required=True)
    rollups = fields.Nested(RollupStateSchema, required=True)
    lag_seconds = fields.Float(required=True)
    backpressure = fields.Nested(BackpressureSchema, required=True)
    bots_dropped = fields.Dict(
        keys=fields.String(validate=validate.OneOf(bots.REASONS)),
        values=fields.Integer(),
        required=True,
        metadata={"description": "Bots' events dropped by ingestion (answered as accepted), by reason."},
    )


STRINGS = {"type": "array", "items": {"type": "string"}}
QUERY_REQUEST = {
    "type": "object",
    "required": ["site_id", "metrics", "date_range"],
    "properties": {
        "site_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "metrics": {**STRINGS, "minItems": 1, "example": ["visitors", "pageviews"]},
        "date_range": {
            "oneOf": [
                {"type": "string", "enum": [*plausible_query.PRESETS, "all"]},
                {**STRINGS, "minItems": 2, "maxItems": 2, "example": ["2025-11-01", "2025-11-30"]},
            ]
        },
        "dimensions": {**STRINGS, "example": ["visit:source"]},
        "filters": {"type": "array", "items": {"type": "array"}, "example": [["is", "event:page", ["/"]]]},
        "order_by": {"type": "array", "items": STRINGS, "example": [["visitors", "desc"]]},
        "pagination": {
            "type": "object",
            "properties": {
                "limit": {"type": "integer", "minimum": 1, "maximum": plausible_query.MAX_LIMIT},
                "offset": {"type": "integer", "minimum": 0},
            },
        },
        "include": {"type": "object", "additionalProperties": {"type": "boolean"}},
    },
}
QUERY_ANSWER = {
    "type": "object",
    "required": ["results", "meta", "query"],
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "metrics": {"type": "array", "items": {"type": "number"}},
                    "dimensions": STRINGS,
                },
            },
        },
        "meta": {"type": "object", "properties": {"from": {"type": "string", "enum": ["rollups", "events"]}}},
        "query": {"type": "object"},
    },
}


def question(summary: str, query: Schema | type[Schema], answer: type[Schema]) -> dict[str, Any]:
    """A GET whose parameters `query` loads and whose answer `answer` describes."""
    return {
        "get": {
            "summary": summary,
            "parameters": [{"in": "query", "schema": query}],
            "responses": {200: json_response(answer, "The answer"), **error_responses(*QUESTION_ERRORS)},
        }
    }


PATHS: dict[str, dict[str, Any]] = {
    "/stats": question(
        "Views, users and top paths of a period, from the rollups", StatsQuerySchema, StatsSchema
    ),
    "/stats/aggregated": question(
        "The same as /stats (and with `by`, /stats/breakdown's first rows), computed from the raw events "
        "(never cached)",
        AggregatedQuerySchema,
        AggregatedSchema,
    ),
    "/stats/timeseries": question(
        "Views and users per hour or day of a period", TimeseriesQuerySchema, TimeseriesSchema
    ),
    "/stats/breakdown": question(
        "Views per path, event type, source, device, country, prop... most viewed first, one page",
        BreakdownQuerySchema,
        BreakdownSchema,
    ),
    "/events/export": {
        "get": {
            "summary": "One page of the site's raw events, oldest first, as NDJSON (docs/export.md)",
            "parameters": [{"in": "query", "schema": EventExportQuerySchema}],
            "responses": {
                200: {
                    "description": "One event per line; the header X-Next-Cursor, while more remain",
                    "headers": {"X-Next-Cursor": {"schema": {"type": "string"}}},
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                },
                **error_responses(*QUESTION_ERRORS),
            },
        }
    },
    "/stats/export": {
        "get": {
            "summary": "The period's statistics as a zip of CSV files, one per breakdown (docs/export.md)",
            "parameters": [{"in": "query", "schema": PeriodQuerySchema}],
            "responses": {
                200: {
                    "description": "visitors.csv, pages.csv, event_types.csv, a file per other breakdown",
                    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                },
                **error_responses(*QUESTION_ERRORS),
            },
        }
    },
    "/api/v2/query": {
        "post": {
            "summary": "A subset of Plausible's Stats API v2 (docs/query-api.md)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": QUERY_REQUEST}}},
            "responses": {
                200: json_response(QUERY_ANSWER, "The answer"),
                **error_responses(*QUESTION_ERRORS),
            },
        }
    },
    "/stats/realtime": question("Events and users of the last minutes", SiteQuerySchema, RealtimeSchema),
    # Without site_id and date it gives the totals of every site.
    "/health/pipeline": question(
        "Queue, event counts, rollup backlog and lag",
        PeriodQuerySchema(only=("site_id", "date"), partial=True),
        PipelineSchema,
    ),
    "/metrics": metrics_operation("requests, and the pipeline's gauges"),
    "/health": health_operation("reporting", "MongoDB"),
}


def document() -> dict[str, Any]:
    return build_document(
        "Analytics reporting", "Answers questions about the stored events of a site.", PATHS
    )
