"""`POST /events/import`: NDJSON or a JSON array, bounded, each line reported by number."""

from __future__ import annotations

import gzip
import json

from app.store import events as event_store
from app.transfer.views import MAX_IMPORT_BYTES
from tools.factories import make_event

OLD = "2001-02-03T04:05:06Z"


def test_ndjson_is_imported_and_bad_lines_reported_by_number(ingestion, db):
    body = json.dumps(make_event(site_id="http-import", timestamp=OLD)) + "\n{}\n"
    response = ingestion.post("/events/import", data=body, content_type="application/x-ndjson")
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["status"], answer["sent"], answer["refused"]) == ("accepted", 1, 1)
    assert set(answer["errors"]["2"]) == {"site_id", "event_type", "timestamp"}
    assert db[event_store.EVENTS].count_documents({"site_id": "http-import"}) == 1


def test_a_json_array_is_imported_its_items_numbered_from_one(ingestion, db):
    events = [make_event(site_id="array-import", timestamp=OLD), {"site_id": "array-import"}]
    response = ingestion.post("/events/import?site_id=array-copy", json=events)
    assert response.status_code == 200
    assert list(response.get_json()["errors"]) == ["2"]
    assert db[event_store.EVENTS].count_documents({"site_id": "array-copy"}) == 1


def test_a_body_without_a_valid_event_is_a_400(ingestion):
    response = ingestion.post("/events/import", data="nope\n", content_type="application/x-ndjson")
    assert response.status_code == 400
    assert response.get_json()["errors"]["1"]["_line"][0].startswith("Not JSON")


def test_the_body_is_bounded(ingestion):
    body = b" " * (MAX_IMPORT_BYTES + 1)
    assert ingestion.post("/events/import", data=body, content_type="application/x-ndjson").status_code == 413


def test_another_media_type_is_a_415(ingestion):
    assert ingestion.post("/events/import", data="x", content_type="text/csv").status_code == 415


def test_a_gzip_body_is_imported(ingestion, db):
    body = gzip.compress((json.dumps(make_event(site_id="gzip-import", timestamp=OLD)) + "\n").encode())
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"}
    response = ingestion.post("/events/import", data=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert db[event_store.EVENTS].count_documents({"site_id": "gzip-import"}) == 1
