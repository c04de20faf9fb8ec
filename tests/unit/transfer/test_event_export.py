"""`GET /events/export`: a site's stored events as NDJSON, in `_id` order, a page at a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from app.ingestion.schemas import to_message
from app.store import events as event_store
from tools.factories import make_event

SITE = "site-export"


def lines(response) -> list[dict]:
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def export(reporting, query: str):
    return reporting.get(f"/events/export?site_id={SITE}&start=2025-11-14&end=2025-11-16{query}")


def test_export_gives_each_event_as_a_client_would_send_it_again(reporting, store):
    event = make_event(
        site_id=SITE,
        event_id="6f1c2a52-4c8e-4d83-9a59-0a3a1f0f4c11",
        url="https://shop.example/pricing?x=1",
        referrer="https://search.example/",
        props={"plan": "pro", "seats": 3},
    )
    store([event])
    response = export(reporting, "")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert lines(response) == [
        {
            "site_id": SITE,
            "event_type": "page_view",
            "path": "/pricing",
            "user_id": "user-xyz-789",
            "timestamp": "2025-11-15T10:00:00.000Z",
            "event_id": "6f1c2a52-4c8e-4d83-9a59-0a3a1f0f4c11",
            "url": "https://shop.example/pricing?x=1",
            "referrer": "https://search.example/",
            "props": {"plan": "pro", "seats": 3},
            "source": "search.example",  # derived by the worker from the referrer
        }
    ]
    assert "X-Next-Cursor" not in response.headers


def test_export_pages_in_time_order_and_resumes_from_the_cursor(reporting, store):
    times = [f"2025-11-15T10:{minute:02d}:00Z" for minute in (5, 1, 4, 2, 3)]
    store([make_event(site_id=SITE, timestamp=moment, path=f"/{i}") for i, moment in enumerate(times)])
    store([make_event(site_id="another-site", timestamp="2025-11-15T10:00:00Z")])
    first = export(reporting, "&limit=2")
    assert first.status_code == 200
    cursor = first.headers["X-Next-Cursor"]
    second = export(reporting, f"&limit=2&cursor={cursor}")
    third = export(reporting, f"&limit=2&cursor={second.headers['X-Next-Cursor']}")
    assert "X-Next-Cursor" not in third.headers
    exported = lines(first) + lines(second) + lines(third)
    assert [line["timestamp"][11:16] for line in exported] == ["10:01", "10:02", "10:03", "10:04", "10:05"]
    assert {line["site_id"] for line in exported} == {SITE}


def test_export_keeps_to_the_days_asked_for(reporting, store):
    days = [
        "2025-11-13T23:59:59.999Z",
        "2025-11-14T00:00:00Z",
        "2025-11-16T23:59:59.999Z",
        "2025-11-17T00:00:00Z",
    ]
    store([make_event(site_id=SITE, timestamp=moment) for moment in days])
    assert [line["timestamp"] for line in lines(export(reporting, ""))] == [
        "2025-11-14T00:00:00.000Z",
        "2025-11-16T23:59:59.999Z",
    ]


def test_a_cursor_of_another_site_or_garbage_is_a_400(reporting, store):
    store([make_event(site_id="another-site"), make_event(site_id="another-site", path="/x")])
    other = reporting.get("/events/export?site_id=another-site&start=2025-11-15&end=2025-11-15&limit=1")
    for cursor in (other.headers["X-Next-Cursor"], "not-a-cursor"):
        response = export(reporting, f"&cursor={cursor}")
        assert response.status_code == 400
        assert "cursor" in response.get_json()["errors"]


def test_limit_is_bounded(reporting):
    assert export(reporting, "&limit=0").status_code == 400
    assert export(reporting, "&limit=10001").status_code == 400


def test_the_last_day_of_the_calendar_is_a_period_like_any_other(reporting):
    response = reporting.get(f"/events/export?site_id={SITE}&start=9999-12-30&end=9999-12-31")
    assert response.status_code == 200
    assert response.get_data() == b""


def test_missing_days_are_a_400_naming_the_parameters(reporting):
    response = reporting.get(f"/events/export?site_id={SITE}&start=2025-11-14")
    assert response.status_code == 400
    message = response.get_json()["message"]
    assert message == "Missing required parameters: site_id, start, end (YYYY-MM-DD): end"


def test_a_page_holds_every_field_a_worker_stores_but_its_bookkeeping(db):
    message = to_message(make_event(site_id=SITE)) | {
        name: f"{name}-value" for name in event_store.STORED_FIELDS
    }
    document = event_store.event_document(message, datetime.now(UTC), "batch-1")
    db[event_store.EVENTS].insert_one(document)
    day = (datetime(2025, 11, 15, tzinfo=UTC), datetime(2025, 11, 16, tzinfo=UTC))
    [read] = event_store.site_events_page(db, SITE, *day, None, 10)
    assert read.keys() == document.keys() - set(event_store.INTERNAL_FIELDS)


def test_a_page_is_read_with_a_projection_naming_its_fields(db, finds):
    # FerretDB copies each whole document for a projection that leaves fields out.
    day = (datetime(2025, 11, 15, tzinfo=UTC), datetime(2025, 11, 16, tzinfo=UTC))
    event_store.site_events_page(db, SITE, *day, None, 10)
    assert finds
    assert all(set(projection.values()) == {1} for _, projection in finds)
