"""Every reporting endpoint against a plain Python computation over the same events, through
the real ingestion service, worker, compactor and MongoDB server; again after a redelivered
batch and after `flask rebuild-rollups`."""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app import create_app
from app.ingestion.schemas import to_message
from app.queue.publish import publish
from app.settings import Settings
from tests.integration.client import TIMEOUT
from tests.integration.services import start_healthy
from tools.processes import PYTHON_BIN, wait_until

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
# Instants around midnights and the 2025 DST changes of Berlin and New York.
ANCHORS = [
    datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # Berlin springs forward
    datetime(2025, 10, 26, 1, 0, tzinfo=UTC),  # Berlin falls back
    datetime(2025, 3, 9, 7, 0, tzinfo=UTC),  # New York springs forward
    datetime(2025, 11, 2, 6, 0, tzinfo=UTC),  # New York falls back
    datetime(2025, 11, 15, 18, 30, tzinfo=UTC),  # midnight in Kolkata
    datetime(2025, 11, 16, 0, 0, tzinfo=UTC),  # midnight UTC
]
OFFSETS = [timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30)]
PATHS = st.one_of(
    st.none(),
    st.sampled_from(["/", "/a.b", "/$price", "/ünïcode/ページ", "/" + "x" * 2047, "/a", "/b"]),
    # Any text ingestion accepts: no control characters, no lone surrogates.
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30).map(
        lambda text: "/" + text
    ),
)
USERS = st.one_of(st.none(), st.sampled_from(["u1", "u2", "u3", "ü4", "u" * 256]))


def event_strategy(anchor: datetime) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda minutes, offset, path, user, kind: {
            "event_id": str(uuid.uuid4()),
            "event_type": kind,
            "path": path,
            "user_id": user,
            "timestamp": (anchor + timedelta(minutes=minutes)).astimezone(timezone(offset)).isoformat(),
        },
        st.integers(-36 * 60, 36 * 60),
        st.sampled_from(OFFSETS),
        PATHS,
        USERS,
        st.sampled_from(["page_view", "page_view", "click"]),
    )


scenarios = st.sampled_from(ANCHORS).flatmap(
    lambda anchor: st.tuples(st.just(anchor), st.lists(event_strategy(anchor), min_size=1, max_size=60))
)


# --- the plain Python computation -------------------------------------------------------


def instant(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"]).astimezone(UTC)


def selected(events, zone: ZoneInfo, first: date, last: date, event_type: str | None = None):
    return [
        e
        for e in events
        if first <= instant(e).astimezone(zone).date() <= last and event_type in (None, e["event_type"])
    ]


def ranked(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


# Whom the service counts an event as: its user, else its visitor; this test sends every
# event from one address with one user agent, within one UTC day of the server's (one salt).
THE_TEST_CLIENT = "the test client"


def counted_as(event: dict[str, Any]) -> str:
    return event.get("user_id") or THE_TEST_CLIENT


def expected_summary(events, limit: int) -> dict[str, Any]:
    paths = Counter(e["path"] for e in events if e.get("path"))
    return {
        "total_views": len(events),
        "unique_users": len({counted_as(e) for e in events}),
        "top_paths": [{"path": p, "views": n} for p, n in ranked(paths)[:limit]],
    }


def expected_series(events, zone: ZoneInfo, first: date, last: date, interval: str) -> list[dict[str, Any]]:
    start = datetime.combine(first, datetime.min.time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone).astimezone(UTC)
    if interval == "day":
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        keys = [
            (day.isoformat(), lambda e, day=day: instant(e).astimezone(zone).date() == day) for day in days
        ]
    else:
        hours = [start + timedelta(hours=n) for n in range((end - start) // timedelta(hours=1))]
        keys = [
            (
                hour.astimezone(zone).isoformat(),
                lambda e, hour=hour: hour <= instant(e) < hour + timedelta(hours=1),
            )
            for hour in hours
        ]
    series = []
    for label, belongs in keys:
        inside = [e for e in events if belongs(e)]
        users = {counted_as(e) for e in inside}
        series.append({"start": label, "views": len(inside), "unique_users": len(users)})
    return series


# --- asking the service ---------------------------------------------------------------------


def ask(reporting_url: str, endpoint: str, **params: Any) -> dict[str, Any]:
    response = requests.get(f"{reporting_url}{endpoint}", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_every_endpoint_matches(reporting_url: str, site_id: str, events, anchor: datetime) -> None:
    """Compare every endpoint, in every zone, over the three local days around the anchor."""
    for zone_name in ZONES:
        zone = ZoneInfo(zone_name)
        middle = anchor.astimezone(zone).date()
        first, last = middle - timedelta(days=1), middle + timedelta(days=1)
        period = {"site_id": site_id, "start": first.isoformat(), "end": last.isoformat(), "tz": zone_name}
        inside = selected(events, zone, first, last)
        for endpoint in ("/stats", "/stats/aggregated"):
            body = ask(reporting_url, endpoint, **period, limit=100)
            assert {k: body[k] for k in ("total_views", "unique_users", "top_paths")} == expected_summary(
                inside, 100
            ), (endpoint, zone_name)
            clicks = ask(reporting_url, endpoint, **period, event_type="click", limit=3)
            assert clicks["total_views"] == len(selected(events, zone, first, last, "click"))
            assert (
                clicks["top_paths"]
                == expected_summary(selected(events, zone, first, last, "click"), 3)["top_paths"]
            )
        one_day = ask(reporting_url, "/stats", site_id=site_id, date=middle.isoformat(), tz=zone_name)
        assert one_day["total_views"] == len(selected(events, zone, middle, middle))
        for interval in ("day", "hour"):
            series = ask(reporting_url, "/stats/timeseries", **period, interval=interval)["series"]
            assert series == expected_series(inside, zone, first, last, interval), (interval, zone_name)
        by_path = Counter(e["path"] for e in inside if e.get("path"))
        pages = [
            ask(reporting_url, "/stats/breakdown", **period, by="path", limit=5, offset=o) for o in (0, 5)
        ]
        assert pages[0]["total"] == len(by_path)
        assert [(r["value"], r["views"]) for p in pages for r in p["results"]] == ranked(by_path)[:10]
        kinds = ask(reporting_url, "/stats/breakdown", **period, by="event_type", limit=100)
        assert [(r["value"], r["views"]) for r in kinds["results"]] == ranked(
            Counter(e["event_type"] for e in inside)
        )


def send(ingestion_url: str, site_id: str, events) -> None:
    response = requests.post(
        f"{ingestion_url}/events", json=[{**e, "site_id": site_id} for e in events], timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events)


def wait_for_all(reporting_url: str, site_id: str, events) -> None:
    """Until the rollups count every event (from the day before the first to the day after the last)."""
    days = sorted(instant(e).date() for e in events)
    span = {
        "site_id": site_id,
        "start": (days[0] - timedelta(days=1)).isoformat(),
        "end": (days[-1] + timedelta(days=1)).isoformat(),
    }
    wait_until(
        lambda: ask(reporting_url, "/stats", **span)["total_views"] >= len(events),
        30,
        f"{len(events)} events of {site_id}",
        interval=0.2,
    )


def recent_events(now: datetime) -> list[dict[str, Any]]:
    """Events inside the realtime window and outside it, a minute away from its edge, and one
    from a clock running four minutes ahead (ingestion accepts five: EVENT_MAX_AHEAD_SECONDS)."""
    ages = [-240, 10, 100, 200, 400, 550]
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "page_view",
            "path": "/now",
            "user_id": f"recent-{age % 3}",
            "timestamp": (now - timedelta(seconds=age)).isoformat(),
        }
        for age in ages
    ]


# No shrinking: each example is a round trip through the whole pipeline, so shrinking a
# failure would take many minutes; the failing example is printed as generated.
@settings(
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios, splits=st.integers(1, 3))
def test_every_endpoint_equals_a_python_computation_of_the_same_events(pipeline, scenario, splits):
    anchor, events = scenario
    site_id = f"site-{uuid.uuid4().hex[:12]}"
    recent = recent_events(datetime.now(UTC))
    for part in range(min(splits, len(events))):
        send(pipeline["ingestion"], site_id, events[part::splits])
    send(pipeline["ingestion"], site_id, recent)
    wait_for_all(pipeline["reporting"], site_id, events)
    assert_every_endpoint_matches(pipeline["reporting"], site_id, events, anchor)
    in_window = [e for e in recent if instant(e) >= datetime.now(UTC) - timedelta(minutes=5)]
    wait_until(
        lambda: ask(pipeline["reporting"], "/stats/realtime", site_id=site_id)["events"] >= len(in_window),
        30,
        "the recent events",
        interval=0.2,
    )
    realtime = ask(pipeline["reporting"], "/stats/realtime", site_id=site_id)
    assert (realtime["events"], realtime["unique_users"]) == (
        len(in_window),
        len({e["user_id"] for e in in_window}),
    )


def fixed_events(anchor: datetime, count: int) -> list[dict[str, Any]]:
    chance = random.Random(5)
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": chance.choice(["page_view", "click"]),
            "path": chance.choice(["/", "/a.b", "/$x", None]),
            "user_id": chance.choice(["u1", "u2", "u3", None]),
            "timestamp": (anchor + timedelta(minutes=chance.randint(-36 * 60, 36 * 60))).isoformat(),
        }
        for _ in range(count)
    ]


def message_of(document: dict[str, Any]) -> dict[str, Any]:
    """A stored event as its queue message was."""
    fields = ("event_id", "site_id", "event_type", "path", "user_id")
    message = {**{name: document[name] for name in fields}, "timestamp": document["timestamp"].isoformat()}
    return message | ({"visitor_id": document["visitor_id"]} if "visitor_id" in document else {})


def wait_until_drained(reporting_url: str) -> None:
    def drained() -> bool:
        health = ask(reporting_url, "/health/pipeline")
        queue = health["queue"]
        return queue["depth"] == queue["unacknowledged"] == health["rollups"]["backlog"] == 0

    wait_until(drained, 30, "the queue and the rollup backlog to drain", interval=0.2)


def test_a_redelivered_batch_and_a_rebuild_change_no_answer(pipeline, db, service_env):
    anchor = ANCHORS[1]
    site_id = f"site-{uuid.uuid4().hex[:12]}"
    events = fixed_events(anchor, 120)
    send(pipeline["ingestion"], site_id, events[:60])
    send(pipeline["ingestion"], site_id, events[60:])
    wait_for_all(pipeline["reporting"], site_id, events)
    assert_every_endpoint_matches(pipeline["reporting"], site_id, events, anchor)

    stored = list(db.events.find({"site_id": site_id}))
    batch_id = stored[0]["batch_id"]
    settings = Settings(redis_url=service_env["REDIS_URL"], mongo_uri=service_env["MONGO_URI"])
    with create_app("ingestion", settings).app_context():
        publish([message_of(doc) for doc in stored if doc["batch_id"] == batch_id], batch_id)
    wait_until_drained(pipeline["reporting"])
    assert_every_endpoint_matches(pipeline["reporting"], site_id, events, anchor)

    days = sorted(instant(e).date() for e in events)
    rebuild = [
        "rebuild-rollups",
        "--site-id",
        site_id,
        "--start",
        days[0].isoformat(),
        "--end",
        days[-1].isoformat(),
    ]
    for command in (["migrate-store"], rebuild):  # a rebuild refuses a store with steps pending
        subprocess.run(
            [str(PYTHON_BIN / "flask"), "--app", "wsgi:reporting", *command],
            env={**os.environ, **service_env},
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert_every_endpoint_matches(pipeline["reporting"], site_id, events, anchor)


# The last days of year 9999: the week from Monday 9999-12-27 ends past what a datetime holds.
CALENDAR_END = [
    "9999-12-26T20:00:00Z",
    "9999-12-27T10:00:00Z",
    "9999-12-30T23:00:00Z",
    "9999-12-31T02:00:00Z",
]
CALENDAR_END_QUESTIONS = [
    {"date": "9999-12-27"},
    {"date": "9999-12-26", "tz": "America/New_York"},
    {"start": "9999-12-20", "end": "9999-12-30"},
    {"start": "9999-12-24", "end": "9999-12-30", "tz": "America/New_York"},
]


def test_the_calendar_s_last_days_are_answered_as_the_aggregation_answers(pipeline, service_env):
    """Events that far ahead only come from the queue (ingestion's window refuses them)."""
    site_id = f"site-{uuid.uuid4().hex[:12]}"
    messages = [
        to_message({"event_id": str(uuid.uuid4()), "event_type": "page_view", "site_id": site_id,
                    "path": f"/{n}", "user_id": f"u{n}", "timestamp": moment})
        for n, moment in enumerate(CALENDAR_END)
    ]  # fmt: skip
    settings = Settings(redis_url=service_env["REDIS_URL"], mongo_uri=service_env["MONGO_URI"])
    with create_app("ingestion", settings).app_context():
        publish(messages, uuid.uuid4().hex)
    wait_until(
        lambda: (
            ask(pipeline["reporting"], "/stats", site_id=site_id, start="9999-12-20", end="9999-12-30")[
                "total_views"
            ]
            == 3
        ),
        30,
        "the events of year 9999",
        interval=0.2,
    )
    for question in CALENDAR_END_QUESTIONS:
        stats = ask(pipeline["reporting"], "/stats", site_id=site_id, **question)
        assert stats == ask(pipeline["reporting"], "/stats/aggregated", site_id=site_id, **question)
        assert stats["total_views"] > 0, question
        for interval in ("day", "hour"):
            series = ask(
                pipeline["reporting"], "/stats/timeseries", site_id=site_id, interval=interval, **question
            )
            assert sum(point["views"] for point in series["series"]) == stats["total_views"], (
                question,
                interval,
            )
        by_path = ask(pipeline["reporting"], "/stats/breakdown", site_id=site_id, by="path", **question)
        assert [(row["value"], row["views"]) for row in by_path["results"]] == [
            (row["path"], row["views"]) for row in stats["top_paths"]
        ]


def test_a_question_that_outlasts_its_time_limit_gets_a_503_saying_so(pipeline, service_env, run_dir):
    """The time bound reaches the server as maxTimeMS and frees the worker; the answer says why."""
    process, url = start_healthy(
        "reporting", {**service_env, "REPORTING_QUERY_SECONDS": "0.000001"}, run_dir, "slow-reporting"
    )
    try:
        for path in ("/stats", "/stats/aggregated", "/stats/timeseries"):
            response = requests.get(f"{url}{path}?site_id=site-timeout&date=2025-11-15", timeout=TIMEOUT)
            assert response.status_code == 503, path
            assert response.json() == {
                "status": "error",
                "message": "The question took longer than its time limit: ask about a shorter period",
            }
        assert requests.get(
            f"{pipeline['reporting']}/stats?site_id=site-timeout&date=2025-11-15", timeout=TIMEOUT
        ).ok
    finally:
        process.stop()
