"""Timestamps are accepted within a window around the server's time, only at the edge."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from marshmallow import ValidationError

from app.ingestion.schemas import TimeWindow, load_batch, to_message
from app.settings import Settings
from app.store import dead_letters
from app.store import events as event_store
from tools.factories import make_event, make_message, new_site_id

DEFAULTS = Settings()
NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)  # the injected clock
WINDOW = TimeWindow.around(NOW, DEFAULTS.event_max_age_days, DEFAULTS.event_max_ahead_seconds)
OLDEST = NOW - timedelta(days=DEFAULTS.event_max_age_days)
NEWEST = NOW + timedelta(seconds=DEFAULTS.event_max_ahead_seconds)
JUST = timedelta(seconds=1)
RULE = "at most 30 days before the server's time and 300 seconds after it."
OUTSIDE_MESSAGE = f"Must be between 2026-05-16T12:00:00+00:00 and 2026-06-15T12:05:00+00:00: {RULE}"


def at(moment: datetime, **overrides):
    return make_event(timestamp=moment.isoformat(), **overrides)


def test_the_default_window_is_30_days_back_and_5_minutes_ahead():
    assert (DEFAULTS.event_max_age_days, DEFAULTS.event_max_ahead_seconds) == (30, 300)


@pytest.mark.parametrize(
    "moment",
    [
        OLDEST,
        NEWEST,
        NOW,
        OLDEST.astimezone(timezone(timedelta(hours=9))),  # same instant
        NEWEST.replace(tzinfo=None),  # a naive time is UTC
    ],
    ids=["oldest", "newest", "now", "oldest-with-offset", "newest-naive"],
)
def test_a_timestamp_on_the_window_s_edges_is_accepted(moment):
    accepted = datetime.fromisoformat(to_message(at(moment), WINDOW)["timestamp"])
    assert accepted == (moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@pytest.mark.parametrize(
    "moment",
    [
        OLDEST - JUST,
        NEWEST + JUST,
        (NEWEST + JUST).astimezone(timezone(timedelta(hours=-5))),
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
    ids=["too-old", "too-far-ahead", "too-far-ahead-with-offset", "year-9999", "year-1"],
)
def test_a_timestamp_just_outside_the_window_is_refused_naming_the_window(moment):
    with pytest.raises(ValidationError) as caught:
        to_message(at(moment), WINDOW)
    assert caught.value.normalized_messages() == {"timestamp": [OUTSIDE_MESSAGE]}


def test_without_a_window_any_time_that_exists_in_utc_is_a_message():
    """The project's own tools (tests, benchmarks) build messages of any date."""
    assert to_message(at(datetime(2000, 1, 1, tzinfo=UTC)))["timestamp"] == "2000-01-01T00:00:00+00:00"


def test_a_window_wider_than_the_calendar_accepts_every_year():
    whole_calendar = TimeWindow.around(NOW, 10**12, 10**15)
    for moment in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=UTC)):
        assert to_message(at(moment), whole_calendar)


def test_a_batch_event_outside_the_window_is_rejected_by_index_and_the_rest_kept():
    events = [at(NOW, path="/in"), at(OLDEST - JUST), at(NEWEST, path="/edge"), at(NEWEST + JUST)]
    batch = load_batch({"events": events}, WINDOW)
    assert [message["path"] for message in batch.messages] == ["/in", "/edge"]
    assert batch.errors == {"1": {"timestamp": [OUTSIDE_MESSAGE]}, "3": {"timestamp": [OUTSIDE_MESSAGE]}}


def test_a_batch_event_with_other_faults_keeps_its_own_errors():
    batch = load_batch({"events": [at(OLDEST - JUST, site_id=7), at(NOW)]}, WINDOW)
    assert batch.errors == {"0": {"site_id": ["Not a valid string."]}}
    assert len(batch.messages) == 1


# -- a client's clock that is wrong: `sent_at` -------------------------------------------------

FAST = timedelta(hours=2)  # far beyond what the window allows ahead


def test_an_event_sent_from_a_fast_clock_is_dated_on_the_server_s_clock():
    """The page tag's case: `timestamp` and `sent_at` both read from a clock two hours fast."""
    message = to_message(at(NOW + FAST, sent_at=(NOW + FAST).isoformat()), WINDOW)
    assert datetime.fromisoformat(message["timestamp"]) == NOW
    assert "sent_at" not in message


def test_sent_at_keeps_the_time_between_the_event_and_its_sending():
    """An event queued on the client a day before it was sent, by a clock an hour slow."""
    sent = NOW - timedelta(hours=1)
    message = to_message(at(sent - timedelta(days=1), sent_at=sent.isoformat()), WINDOW)
    assert datetime.fromisoformat(message["timestamp"]) == NOW - timedelta(days=1)


def test_a_time_still_outside_the_window_after_the_correction_is_refused():
    with pytest.raises(ValidationError) as caught:
        to_message(at(NEWEST + JUST + FAST, sent_at=(NOW + FAST).isoformat()), WINDOW)
    assert caught.value.normalized_messages() == {"timestamp": [OUTSIDE_MESSAGE]}


def test_a_correction_past_the_calendar_is_refused_as_outside_the_window():
    with pytest.raises(ValidationError) as caught:
        to_message(at(datetime(9999, 12, 31, tzinfo=UTC), sent_at="0001-01-02T00:00:00Z"), WINDOW)
    assert caught.value.normalized_messages() == {"timestamp": [OUTSIDE_MESSAGE]}


def test_an_invalid_sent_at_is_refused_under_its_name():
    with pytest.raises(ValidationError) as caught:
        to_message(at(NOW, sent_at="yesterday"), WINDOW)
    assert list(caught.value.normalized_messages()) == ["sent_at"]


def test_a_batch_event_with_sent_at_is_dated_on_the_server_s_clock():
    batch = load_batch({"events": [at(NOW + FAST, sent_at=(NOW + FAST).isoformat())]}, WINDOW)
    assert [datetime.fromisoformat(message["timestamp"]) for message in batch.messages] == [NOW]


# -- over HTTP, with the default window (the other unit tests run with a wide one) ------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(
        settings,
        event_max_age_days=DEFAULTS.event_max_age_days,
        event_max_ahead_seconds=DEFAULTS.event_max_ahead_seconds,
    )


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_an_event_of_now_is_accepted(ingestion, db):
    site_id = new_site_id()
    assert post(ingestion, "/event", at(datetime.now(UTC), site_id=site_id)).status_code == 200
    assert db[event_store.EVENTS].count_documents({"site_id": site_id}) == 1


@pytest.mark.parametrize(
    "offset",
    [-timedelta(days=DEFAULTS.event_max_age_days, hours=1), timedelta(hours=1)],
    ids=["a month ago", "an hour ahead"],
)
def test_an_event_outside_the_window_is_a_400_naming_it(ingestion, db, offset):
    site_id = new_site_id()
    response = post(ingestion, "/event", at(datetime.now(UTC) + offset, site_id=site_id))
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"] == "Invalid fields: timestamp"
    assert list(body["errors"]) == ["timestamp"]
    [message] = body["errors"]["timestamp"]
    assert message.endswith(RULE)
    assert db[event_store.EVENTS].count_documents({"site_id": site_id}) == 0


def test_a_browser_whose_clock_runs_an_hour_fast_is_counted_now(ingestion, db):
    site_id = new_site_id()
    fast = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = post(ingestion, "/event", make_event(site_id=site_id, timestamp=fast, sent_at=fast))
    assert response.status_code == 200
    [stored] = db[event_store.EVENTS].find({"site_id": site_id})
    assert abs(stored["timestamp"].replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_batch_keeps_its_events_inside_the_window(ingestion, db):
    site_id = new_site_id()
    now = datetime.now(UTC)
    events = [at(now, site_id=site_id), at(now + timedelta(days=1), site_id=site_id)]
    response = post(ingestion, "/events", events)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["accepted"], body["rejected"], list(body["errors"])) == (1, 1, ["1"])
    assert list(body["errors"]["1"]) == ["timestamp"]
    assert db[event_store.EVENTS].count_documents({"site_id": site_id}) == 1


def test_a_batch_wholly_outside_the_window_is_a_400_by_index(ingestion):
    response = post(ingestion, "/events", [at(datetime(2025, 11, 15, tzinfo=UTC))])
    assert response.status_code == 400
    body = response.get_json()
    assert body["message"] == "No valid event in the batch"
    assert list(body["errors"]["0"]) == ["timestamp"]


def test_replay_dead_stores_old_events_whatever_the_window(ingestion_app, db):
    """The window is for clients: events already accepted are never refused later."""
    old = [make_message(site_id=new_site_id(), timestamp="2025-11-15T10:00:00Z") for _ in range(2)]
    dead_letters.dead_letter(db, [(event, "refused") for event in old], batch_id="batch-0")
    result = ingestion_app.test_cli_runner().invoke(args=["replay-dead"])
    assert result.exit_code == 0, result.output
    assert db[event_store.EVENTS].count_documents({"site_id": {"$in": [e["site_id"] for e in old]}}) == 2


def test_rebuild_rollups_counts_old_events_whatever_the_window(ingestion_app, store, migrated):
    site_id = new_site_id()
    store([make_event(site_id=site_id, timestamp="2025-11-15T10:00:00Z")])
    result = ingestion_app.test_cli_runner().invoke(
        args=["rebuild-rollups", "--site-id", site_id, "--start", "2025-11-15"]
    )
    assert result.exit_code == 0, result.output
    assert "1 events" in result.output
