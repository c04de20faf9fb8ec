"""Query-string schemas of the reporting endpoints; each loads into a `Period` and options."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    EXCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from app.rollups.dimensions import DIMENSIONS, PROP_PREFIX, is_dimension
from app.web.errors import MISSING_MESSAGE
from reporting import comparison, filters
from reporting.periods import Period
from reporting.queries import VISIT_BREAKDOWNS

MAX_DAYS = 366
MAX_HOURLY_DAYS = 31
MAX_LIMIT = 100
UTC_ZONE = ZoneInfo("UTC")


class TimeZone(fields.Field):
    """An IANA time zone name such as `Europe/Berlin`, loaded as a ZoneInfo."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> ZoneInfo:
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder, such as America
            raise ValidationError("Not a known IANA time zone, such as Europe/Berlin.") from None


class SiteQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE  # a dashboard's cache-busting parameter is not an error

    site_id = fields.String(
        required=True, validate=validate.Length(min=1, max=128), error_messages={"required": MISSING_MESSAGE}
    )


def given_period(data: dict[str, Any]) -> Period | None:
    """The period of the loaded parameters, without site or filters; None without its days."""
    first = data.get("date") or data.get("start")
    last = data.get("end", first)
    if first is None or last is None:
        return None
    return Period("", first, last, data.get("tz", UTC_ZONE))


class PeriodQuerySchema(SiteQuerySchema):
    """`date`, or `start` and `end` (inclusive, at most MAX_DAYS days), as days of `tz`."""

    date = fields.Date(format="%Y-%m-%d")
    start = fields.Date(format="%Y-%m-%d")
    end = fields.Date(format="%Y-%m-%d")
    tz = TimeZone(
        load_default=UTC_ZONE, metadata={"type": "string", "default": "UTC", "example": "Europe/Berlin"}
    )
    event_type = fields.String(validate=validate.Length(min=1, max=64))

    max_days = MAX_DAYS

    @validates_schema
    def _one_period(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "date" in data:
            if "start" in data or "end" in data:
                raise ValidationError("Give either date or start and end.", "date")
            return
        if "start" not in data or "end" not in data:
            raise ValidationError(MISSING_MESSAGE, "date")
        if data["end"] < data["start"]:
            raise ValidationError("end must not be before start.", "end")
        if data["end"] - data["start"] >= timedelta(days=self.max_days):
            raise ValidationError(f"A range spans at most {self.max_days} days.", "end")

    @validates_schema(skip_on_field_errors=True)
    def _computable(self, data: dict[str, Any], **kwargs: Any) -> None:
        """The period's first and last instants exist: a day at the calendar's ends, in a zone
        whose offset pushes it past year 1 or 9999, does not."""
        period = given_period(data)
        if period is not None and not period.computable():
            raise ValidationError("This period reaches past the ends of the calendar.", "period")

    @post_load
    def _period(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        first: date = data.pop("date", None) or data.pop("start")
        last: date = data.pop("end", first)
        zone = data.pop("tz", UTC_ZONE)
        site_id, event_type = data.pop("site_id"), data.pop("event_type", None)
        data["period"] = Period(site_id, first, last, zone, event_type, data.pop("filters", ()))
        return data


class Filters(fields.Field):
    """Filters as Plausible's Stats API v1 writes them (`reporting/filters.py`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> filters.Filters:
        try:
            return filters.parse(str(value))
        except filters.FilterError as error:
            raise ValidationError(str(error)) from None


class FilteredQuerySchema(PeriodQuerySchema):
    filters = Filters(
        metadata={
            "type": "string",
            "description": "Count only the events these filters match (docs/query-api.md#filters).",
            "example": "source==Google|Bing;path!=/admin;prop:plan~pro",
        }
    )

    @validates_schema(skip_on_field_errors=True)
    def _filterable(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Filters choose events; a breakdown by entry or exit page counts visits, which
        carry no event's dimensions."""
        if data.get("filters") and data.get("by") in VISIT_BREAKDOWNS:
            raise ValidationError(f"Filters do not apply to a breakdown by {data['by']}.", "filters")


class ComparedQuerySchema(FilteredQuerySchema):
    compare = fields.String(
        validate=validate.OneOf(comparison.COMPARISONS),
        metadata={
            "description": "Answer for this other period too, beside the period's own figures, with the "
            "change in percent (docs/api.md#comparisons)."
        },
    )

    @validates_schema(skip_on_field_errors=True)
    def _comparable(self, data: dict[str, Any], **kwargs: Any) -> None:
        period = given_period(data)
        if period is None or period.last_day < period.first_day or "compare" not in data:
            return
        try:
            computable = comparison.other_period(period, data["compare"]).computable()
        except (OverflowError, ValueError):
            computable = False
        if not computable:
            raise ValidationError(
                "The period to compare with reaches past the ends of the calendar.", "compare"
            )


def limit_field() -> fields.Integer:
    return fields.Integer(load_default=10, validate=validate.Range(min=1, max=MAX_LIMIT))


BREAKDOWNS = ("path", "event_type", "entry_page", "exit_page", *DIMENSIONS)


def breakdown_by(**options: Any) -> fields.String:
    """What a breakdown counts views by: a path, an event type, a dimension, or a prop's key."""

    def valid(value: str) -> bool:
        if value in BREAKDOWNS or is_dimension(value):
            return True
        raise ValidationError(f"Must be one of {', '.join(BREAKDOWNS)} or {PROP_PREFIX}<key>.")

    return fields.String(validate=valid, **options)


class StatsQuerySchema(ComparedQuerySchema):
    limit = limit_field()


class AggregatedQuerySchema(FilteredQuerySchema):
    """A cross-check of the plain answers: it takes no `compare`."""

    limit = limit_field()
    by = breakdown_by()


class TimeseriesQuerySchema(ComparedQuerySchema):
    interval = fields.String(load_default="day", validate=validate.OneOf(["hour", "day"]))

    @validates_schema
    def _hourly_span(self, data: dict[str, Any], **kwargs: Any) -> None:
        first, last = data.get("start"), data.get("end")
        long_range = first and last and last - first >= timedelta(days=MAX_HOURLY_DAYS)
        if data.get("interval") == "hour" and long_range:
            raise ValidationError(f"An hourly series spans at most {MAX_HOURLY_DAYS} days.", "end")


class BreakdownQuerySchema(ComparedQuerySchema):
    by = breakdown_by(required=True)
    limit = limit_field()
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0))


stats_query_schema = StatsQuerySchema()
aggregated_query_schema = AggregatedQuerySchema()
site_day_schema = PeriodQuerySchema(only=("site_id", "date"))
timeseries_query_schema = TimeseriesQuerySchema()
breakdown_query_schema = BreakdownQuerySchema()
site_query_schema = SiteQuerySchema()


# Events per page of `GET /events/export`: by default, and at most.
EXPORT_LIMIT = 1000
MAX_EXPORT_LIMIT = 10000


class EventExportQuerySchema(SiteQuerySchema):
    """The UTC days `start`..`end` (inclusive, any span: a page is bounded by `limit`)."""

    start = fields.Date(format="%Y-%m-%d", required=True, error_messages={"required": MISSING_MESSAGE})
    end = fields.Date(format="%Y-%m-%d", required=True, error_messages={"required": MISSING_MESSAGE})
    cursor = fields.String(validate=validate.Length(min=1, max=1024))
    limit = fields.Integer(load_default=EXPORT_LIMIT, validate=validate.Range(min=1, max=MAX_EXPORT_LIMIT))

    @validates_schema(skip_on_field_errors=True)
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end"] < data["start"]:
            raise ValidationError("end must not be before start.", "end")


event_export_query_schema = EventExportQuerySchema()


class StatsExportQuerySchema(PeriodQuerySchema):
    """Every event of the period: `filters` is refused rather than ignored, lest a filtered
    export be taken for what the filters chose."""

    filters = fields.Raw()

    @validates("filters")
    def _no_filters(self, value: Any, **kwargs: Any) -> None:
        raise ValidationError("The export does not take filters: it counts every event.")


stats_export_query_schema = StatsExportQuerySchema()
