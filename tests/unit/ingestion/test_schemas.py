import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.ingestion.schemas import Batch, TimeWindow, event_schema, load_batch, to_message
from app.web.errors import validation_message
from tools.factories import make_event

ABSENT = object()  # a field left out of the payload


def load_errors(payload: object) -> dict:
    with pytest.raises(ValidationError) as caught:
        event_schema.load(payload)  # type: ignore[arg-type]
    return caught.value.normalized_messages()


def test_a_valid_event_loads_with_its_fields():
    event = event_schema.load(make_event())
    assert event["site_id"] == "site-abc-123"
    assert event["path"] == "/pricing"
    assert event["timestamp"] == datetime(2025, 11, 15, 10, tzinfo=UTC)


def test_a_naive_timestamp_is_taken_as_utc():
    event = event_schema.load(make_event(timestamp="2025-11-15T10:00:00"))
    assert event["timestamp"] == datetime(2025, 11, 15, 10, tzinfo=UTC)


def test_an_offset_in_the_timestamp_is_honoured():
    event = event_schema.load(make_event(timestamp="2025-11-15T01:30:00+02:00"))
    assert event["timestamp"] == datetime(2025, 11, 15, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert event["timestamp"].astimezone(UTC) == datetime(2025, 11, 14, 23, 30, tzinfo=UTC)


def test_missing_fields_are_named_in_schema_order():
    assert validation_message(load_errors({})) == "Missing required fields: site_id, event_type, timestamp"


def test_a_null_required_field_counts_as_missing():
    assert validation_message(load_errors(make_event(site_id=None) | {"site_id": None})) == (
        "Missing required fields: site_id"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site_id", ""),
        ("site_id", "x" * 129),
        ("site_id", "bad\nsite"),
        ("site_id", 42),
        ("event_type", "x" * 65),
        ("event_type", ["page_view"]),
        ("path", "/" * 2049),
        ("path", 7),
        ("user_id", "u" * 257),
        ("timestamp", "yesterday"),
        ("timestamp", "2025-02-30T10:00:00Z"),
        ("timestamp", "2025-11-15T25:00:00Z"),
        ("timestamp", 1731664800),
        ("event_id", "not-a-uuid"),
        # Bad input that reached the queue once and failed every request of its group there.
        ("timestamp", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
        ("timestamp", "9999-12-31T23:00:00-05:00"),  # after year 9999 in UTC
        ("path", "/cut-emoji-\ud83d"),  # a lone UTF-16 surrogate
        ("user_id", "\udc00"),
        ("site_id", "site-\ud83d"),
        ("event_type", "page\x00view"),  # control characters
        ("path", "/a\tb"),
        ("user_id", "u\x7f"),
    ],
)
def test_an_invalid_field_is_reported_by_name(field, value):
    errors = load_errors(make_event(**{field: value}))
    assert list(errors) == [field]
    assert validation_message(errors) == f"Invalid fields: {field}"


def test_optional_fields_may_be_absent_or_null():
    event = event_schema.load(make_event(path=None, user_id=None) | {"user_id": None})
    assert "path" not in event
    assert event["user_id"] is None


def test_unknown_fields_are_ignored():
    assert "color" not in event_schema.load(make_event(color="blue"))


def test_an_event_id_is_kept_when_sent_and_assigned_when_not():
    sent = "6f1c2a9e-2b1e-4c7d-9a51-0d7c8f3e4b21"
    assert str(event_schema.load(make_event(event_id=sent))["event_id"]) == sent
    first, second = (event_schema.load(make_event())["event_id"] for _ in range(2))
    assert first != second


def test_a_json_array_is_not_an_event():
    assert "_schema" in load_errors([make_event()])


def test_the_queued_message_is_plain_json_with_an_iso_timestamp():
    message = to_message(make_event(timestamp="2025-11-15T01:30:00+02:00"))
    assert message["timestamp"] == "2025-11-15T01:30:00+02:00"
    assert isinstance(message["event_id"], str)
    assert json.loads(json.dumps(message)) == message


# Text as the schema accepts it: no control characters, no lone surrogates.
valid_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30)
# Times that exist in UTC whatever their offset (the schema refuses the others).
valid_moments = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.one_of(st.none(), st.timezones()),
)


@given(
    path=st.none() | st.just(ABSENT) | valid_text,
    user_id=st.none() | st.just(ABSENT) | valid_text,
    moment=valid_moments,
    event_id=st.none() | st.uuids(),
)
def test_the_queued_message_is_what_the_schema_dumps(path, user_id, moment, event_id):
    payload = {"site_id": "site-1", "event_type": "page_view", "timestamp": moment.isoformat()}
    payload |= {key: value for key, value in (("path", path), ("user_id", user_id)) if value is not ABSENT}
    if event_id is not None:
        payload["event_id"] = str(event_id)
    message = to_message(payload)
    expected = event_schema.dump(event_schema.load(payload | {"event_id": message["event_id"]}))
    assert list(message.items()) == list(expected.items())


batch_items = st.one_of(
    st.builds(
        lambda site, path, event_id: make_event(site_id=site, path=path, event_id=str(event_id)),
        st.text(min_size=1, max_size=5),
        st.one_of(st.none(), st.text(max_size=5)),
        st.uuids(),
    ),
    st.builds(lambda event_id: make_event(event_id=str(event_id), timestamp="yesterday"), st.uuids()),
    st.builds(lambda event_id: make_event(event_id=str(event_id), timestamp="2031-01-01T00:00Z"), st.uuids()),
    st.builds(lambda event_id: make_event(event_id=str(event_id), site_id=None), st.uuids()),
    # Not objects (null is refused by the envelope, before any event is looked at).
    st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=2)),
)


# The factory's events (2025-11-15) are inside it, the 2031 ones outside.
BATCH_WINDOW = TimeWindow.around(datetime(2025, 11, 20, tzinfo=UTC), 30, 300)


@given(st.lists(batch_items, min_size=1, max_size=20))
def test_a_batch_splits_like_each_event_loaded_on_its_own(items):
    """A batch gives what loading each event alone gives."""
    expected = Batch()
    for index, item in enumerate(items):
        try:
            expected.messages.append(to_message(item, BATCH_WINDOW))
        except ValidationError as error:
            expected.errors[str(index)] = error.normalized_messages()
    assert load_batch({"events": items}, BATCH_WINDOW) == expected


def test_a_valid_events_path_is_taken_from_its_url_even_beside_an_invalid_event():
    """docs/api.md: when `path` is absent it is the URL's path. A `many=True` load with one
    invalid event skips every post_load hook, and the valid events lost their path."""
    event = {
        **make_event(url="https://shop.example/pricing"),
        "event_id": "00000000-0000-0000-0000-000000000001",
    }
    event.pop("path", None)
    alone = load_batch({"events": [event]})
    beside_invalid = load_batch({"events": [dict(event), {"site_id": ""}]})
    assert alone.messages[0]["path"] == "/pricing"
    assert beside_invalid.messages[0].get("path") == "/pricing"
