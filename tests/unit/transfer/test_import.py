"""Imports: events of any age through the queue, each counted once however often imported."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.rollups import compactor
from app.store import events as event_store
from app.store import expired
from tools.factories import make_event

OLD = "2001-02-03T04:05:06Z"  # older than any window of live timestamps
ENDPOINTS = ["/stats", "/stats/aggregated", "/stats/timeseries", "/stats/breakdown?by=path"]


def ndjson(events) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


@pytest.fixture
def run_import(ingestion_app, db, counter_store, tmp_path):
    """`flask events import` on a file of these lines; the rollups compacted afterwards."""

    def run(text: str, *args: str):
        path = tmp_path / "events.ndjson"
        path.write_text(text)
        result = ingestion_app.test_cli_runner().invoke(args=["events", "import", str(path), *args])
        compactor.compact(db, counter_store)
        return result

    return run


def stored(db, site_id):
    return list(db[event_store.EVENTS].find({"site_id": site_id}))


def answers(reporting, site_id, date):
    found = {}
    for endpoint in ENDPOINTS:
        joiner = "&" if "?" in endpoint else "?"
        body = reporting.get(f"{endpoint}{joiner}site_id={site_id}&start={date}&end={date}").get_json()
        found[endpoint] = {key: value for key, value in body.items() if key != "site_id"}
    return found


def test_an_old_event_is_imported_with_its_event_id_and_counted(run_import, db, reporting):
    event = make_event(site_id="old-site", timestamp=OLD, event_id="0f8e2b7a-9d51-4e6c-8a3f-2b1c0d9e8f7a")
    result = run_import(ndjson([event]))
    assert result.exit_code == 0, result.output
    assert "Sent 1 events" in result.output
    [document] = stored(db, "old-site")
    assert document["event_id"] == event["event_id"]
    body = reporting.get("/stats?site_id=old-site&date=2001-02-03").get_json()
    assert body["total_views"] == 1


def test_an_import_run_twice_counts_each_event_once(run_import, db, reporting):
    events = [make_event(site_id="twice", timestamp=OLD, path=f"/{n}", event_id=None) for n in range(3)]
    events = [
        {**event, "event_id": f"00000000-0000-4000-8000-00000000000{n}"} for n, event in enumerate(events)
    ]
    run_import(ndjson(events))
    run_import(ndjson(events))
    assert len(stored(db, "twice")) == 3
    assert reporting.get("/stats?site_id=twice&date=2001-02-03").get_json()["total_views"] == 3


def test_lines_that_are_no_event_are_reported_by_number_and_the_rest_sent(run_import, db):
    lines = ndjson([make_event(site_id="mixed", timestamp=OLD)])
    lines += "{not json\n\n" + ndjson([{"site_id": "mixed"}, make_event(site_id="mixed", props={"a": [1]})])
    lines += "[1, 2]\n" + ndjson([make_event(site_id="mixed", timestamp=OLD, path="/last")])
    result = run_import(lines)
    assert result.exit_code == 0
    assert "line 2: {'_line': ['Not JSON" in result.output
    assert "line 4: {'event_type': ['Missing data for required field.'], 'timestamp'" in result.output
    assert "line 5: {'props'" in result.output
    assert "line 6: {'_line'" in result.output
    assert "Sent 2 events to the queue; refused 4 lines" in result.output
    assert sorted(document["path"] for document in stored(db, "mixed")) == ["/last", "/pricing"]


def test_site_puts_every_event_in_the_site_given(run_import, db):
    run_import(ndjson([make_event(site_id="from-a"), make_event(site_id="from-b")]), "--site", "into-c")
    assert len(stored(db, "into-c")) == 2
    assert stored(db, "from-a") == stored(db, "from-b") == []


def test_visitor_ids_and_countries_of_an_export_are_kept(run_import, db):
    visitor = "0123456789abcdef0123456789abcdef"
    run_import(ndjson([make_event(site_id="kept", user_id=None, visitor_id=visitor, country="DE")]))
    [document] = stored(db, "kept")
    assert (document["visitor_id"], document["country"]) == (visitor, "DE")


def test_an_event_older_than_the_retention_mark_is_refused(run_import, db):
    expired.record_expiry(db, datetime(2025, 1, 1, tzinfo=UTC))
    result = run_import(ndjson([make_event(site_id="expired", timestamp="2024-12-31T23:59:59Z")]))
    assert "count it twice" in result.output
    assert "Sent 0 events" in result.output
    assert stored(db, "expired") == []


def test_an_event_older_than_retention_keeps_is_refused(ingestion_app, run_import, db, monkeypatch):
    settings = replace(ingestion_app.extensions["settings"], event_retention_days=4000)
    monkeypatch.setitem(ingestion_app.extensions, "settings", settings)
    too_old = (datetime.now(UTC) - timedelta(days=4001)).isoformat()
    kept = (datetime.now(UTC) - timedelta(days=3999)).isoformat()
    result = run_import(ndjson([make_event(site_id="kept-days", timestamp=t) for t in (too_old, kept)]))
    assert "EVENT_RETENTION_DAYS=4000" in result.output
    assert len(stored(db, "kept-days")) == 1


def test_export_then_import_into_a_new_site_answers_the_same(reporting, store, run_import):
    events = [
        make_event(
            site_id="source", path=f"/p{n % 4}", user_id=f"u{n % 3}", timestamp=f"2025-11-15T1{n}:00:00Z"
        )
        for n in range(10)
    ]
    store(events)
    exported = reporting.get("/events/export?site_id=source&start=2025-11-15&end=2025-11-15")
    assert run_import(exported.get_data(as_text=True), "--site", "copy").exit_code == 0
    assert answers(reporting, "copy", "2025-11-15") == answers(reporting, "source", "2025-11-15")
    assert answers(reporting, "copy", "2025-11-15")["/stats"]["total_views"] == 10


def test_a_line_without_an_event_id_counts_once_however_often_imported(run_import, db):
    lines = ndjson([make_event(site_id="no-ids", timestamp=OLD, path=f"/{n}") for n in range(2)])
    run_import(lines)
    run_import(lines)
    assert len(stored(db, "no-ids")) == 2


def test_what_the_worker_derived_travels_with_the_imported_event(ingestion_app, tmp_path, monkeypatch):
    derived = {"source": "Google", "utm_source": "news", "device": "mobile", "browser": "Safari", "os": "iOS"}
    queued: list[dict] = []
    monkeypatch.setattr("app.transfer.commands.enqueue_events", queued.extend)
    path = tmp_path / "derived.ndjson"
    path.write_text(ndjson([make_event(site_id="derived", **derived)]))
    ingestion_app.test_cli_runner().invoke(args=["events", "import", str(path)])
    [message] = queued
    assert {name: message[name] for name in derived} == derived
