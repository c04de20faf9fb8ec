"""Query-string schemas of the reporting endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas import MISSING_MESSAGE


class StatsQuerySchema(Schema):
    site_id = fields.String(
        required=True, validate=validate.Length(min=1, max=128), error_messages={"required": MISSING_MESSAGE}
    )
    date = fields.Date(format="%Y-%m-%d", required=True, error_messages={"required": MISSING_MESSAGE})


stats_query_schema = StatsQuerySchema()
