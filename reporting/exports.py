"""`GET /events/export` and `GET /stats/export`: a site's raw events as NDJSON, a page at a
time, and its statistics as a zip of CSV files."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
import sys
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import Response, abort, request
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from app.extensions import mongo
from app.store import events as event_store
from app.transfer.lines import export_line
from app.web.errors import error_response
from reporting import queries
from reporting.periods import Period
from reporting.schemas import BREAKDOWNS, event_export_query_schema, stats_export_query_schema
from reporting.views import bp, load_query, within_time_limit

NEXT_CURSOR = "X-Next-Cursor"
EXPORT_MISSING = "Missing required parameters: site_id, start, end (YYYY-MM-DD)"


def load_export_query() -> dict[str, Any]:
    """The export's parameters, or a 400 naming the fields at fault."""
    try:
        query: dict[str, Any] = event_export_query_schema.load(request.args)
    except ValidationError as error:
        errors = error.normalized_messages()
        message = EXPORT_MISSING if {"site_id", "start", "end"} & errors.keys() else "Invalid parameters"
        abort(error_response(400, f"{message}: {', '.join(sorted(errors))}", errors))
    return query


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, site_id: str) -> str:
    """The key a cursor resumes after; a 400 when it is not one of this site's."""
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key.startswith(site_id + event_store.KEY_SEPARATOR):
        message = "Not a cursor of this site's export: pass X-Next-Cursor as it was given."
        abort(error_response(400, "Invalid parameters: cursor", {"cursor": [message]}))
    return key


def utc_days(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants from the start of UTC day `first` to the end of `last` (the calendar's
    end for its last day)."""
    start = datetime.combine(first, time(), tzinfo=UTC)
    try:
        end = datetime.combine(last, time(), tzinfo=UTC) + timedelta(days=1)
    except OverflowError:
        end = datetime.max.replace(tzinfo=UTC)
    return start, end


@bp.get("/events/export")
def events_export() -> ResponseReturnValue:
    """One page of the site's events of the UTC days `start`..`end`, oldest first; the header
    `X-Next-Cursor`, present while more remain, asks for the next page (`cursor=`)."""
    query = load_export_query()
    site_id, limit = query["site_id"], query["limit"]
    start, end = utc_days(query["start"], query["end"])
    after = decode_cursor(query["cursor"], site_id) if "cursor" in query else None
    # One more than the page, to know whether another follows.
    found = within_time_limit(
        lambda: {"page": event_store.site_events_page(mongo.db, site_id, start, end, after, limit + 1)}
    )["page"]
    page = found[:limit]
    response = Response(_lines(page), mimetype="application/x-ndjson")
    if len(found) > limit:
        response.headers[NEXT_CURSOR] = encode_cursor(page[-1]["_id"])
    return response


def _lines(page: list[dict[str, Any]]) -> Iterator[bytes]:
    for document in page:
        yield export_line(document)


# The files of the `by=` values that have a name of their own, as Plausible's export names them.
FILE_NAMES = {"path": "pages.csv", "event_type": "event_types.csv"}
# The last row of a breakdown whose rollups set views apart beyond their caps.
OTHER_ROW = "(other)"


def breakdown_dimensions() -> list[str]:
    """The `by=` values `/stats/breakdown` takes, but `prop:<key>` (any key): each gets a file."""
    return list(BREAKDOWNS)


@bp.get("/stats/export")
def stats_export() -> ResponseReturnValue:
    """The period's statistics as a zip of CSV files: views and users per day
    (`visitors.csv`), and one file per breakdown dimension, every row, most viewed first. The
    same queries as the JSON endpoints."""
    period: Period = load_query(stats_export_query_schema)["period"]
    files = within_time_limit(lambda: stats_files(period))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, text in files.items():
            zipped.writestr(name, text)
    response = Response(archive.getvalue(), mimetype="application/zip")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{period.site_id}-{period.first_day}-{period.last_day}")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


def stats_files(period: Period) -> dict[str, str]:
    """Each CSV file of the export by name."""
    series = queries.timeseries(mongo.db, period, "day")
    files = {
        "visitors.csv": csv_text(
            ["date", "views", "unique_users"], ((p.start, p.views, p.unique_users) for p in series.points)
        )
    }
    for by in breakdown_dimensions():
        found = queries.breakdown(mongo.db, period, by, sys.maxsize, 0)
        rows: list[tuple[str, int]] = [(row.value, row.views) for row in found.results]
        if found.other:
            rows.append((OTHER_ROW, found.other))
        files[FILE_NAMES.get(by, f"{by}.csv")] = csv_text([by, "views"], rows)
    return files


def csv_text(header: list[str], rows: Iterable[tuple[Any, ...]]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue()
