"""`GET /stats/export`: the statistics of a period as a zip of CSV files, one per breakdown."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile

from marshmallow import validate

from app.ingestion.schemas import to_message
from app.rollups import compactor
from app.rollups.caps import Caps
from reporting.schemas import breakdown_query_schema
from tasks.persist import store_batch
from tools.factories import make_event

SITE = "site-csv"
PERIOD = f"site_id={SITE}&start=2025-11-14&end=2025-11-16"


def csv_files(response) -> dict[str, list[list[str]]]:
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    return {name: list(csv.reader(io.StringIO(archive.read(name).decode()))) for name in archive.namelist()}


def test_the_zip_holds_the_same_figures_as_the_json_endpoints(reporting, store):
    store(
        [
            make_event(site_id=SITE, path="/a", user_id="u1", timestamp="2025-11-14T10:00:00Z"),
            make_event(site_id=SITE, path="/a", user_id="u2", timestamp="2025-11-15T10:00:00Z"),
            make_event(
                site_id=SITE, path="/b, a comma", event_type="signup", timestamp="2025-11-15T11:00:00Z"
            ),
        ]
    )
    response = reporting.get(f"/stats/export?{PERIOD}")
    assert response.status_code == 200
    assert response.mimetype == "application/zip"
    assert (
        response.headers["Content-Disposition"] == f'attachment; filename="{SITE}-2025-11-14-2025-11-16.zip"'
    )
    files = csv_files(response)
    assert files["visitors.csv"] == [
        ["date", "views", "unique_users"],
        ["2025-11-14", "1", "1"],
        ["2025-11-15", "2", "2"],
        ["2025-11-16", "0", "0"],
    ]
    assert files["pages.csv"] == [["path", "views"], ["/a", "2"], ["/b, a comma", "1"]]
    assert files["event_types.csv"] == [["event_type", "views"], ["page_view", "2"], ["signup", "1"]]


def test_every_breakdown_dimension_gets_a_file(reporting):
    [rule] = breakdown_query_schema.fields["by"].validators
    assert isinstance(rule, validate.OneOf)
    files = csv_files(reporting.get(f"/stats/export?{PERIOD}"))
    assert len(files) == 1 + len(list(rule.choices))


def test_views_beyond_the_rollups_caps_are_a_last_row(reporting, db, counter_store):
    messages = [to_message(make_event(site_id=SITE, path=f"/{n}")) for n in range(3)]
    store_batch(db, counter_store, uuid.uuid4().hex, messages)
    compactor.compact(db, counter_store, Caps(paths=1, event_types=4))
    pages = csv_files(reporting.get(f"/stats/export?{PERIOD}"))["pages.csv"]
    assert pages[-1] == ["(other)", "2"]


def test_a_bad_period_is_a_400(reporting):
    assert reporting.get(f"/stats/export?site_id={SITE}&start=2025-11-16&end=2025-11-14").status_code == 400
