"""Property tests of the ingestion schemas: whatever JSON a client sends, the answer is a
valid event or a ValidationError in the contract's 400 shape, never another exception."""

import string
from datetime import UTC, datetime

import orjson
import pytest
from flask import Flask
from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from app.ingestion.schemas import MAX_BATCH_EVENTS, load_batch, to_message
from app.web.errors import handle_validation_error
from tools.factories import make_event

# Bounded so that the module runs in a few seconds with the unit tests.
bounded = settings(max_examples=100, deadline=None)

PAGE_TEXT_FIELDS = ["url", "referrer", "title", "screen", "language", "user_agent"]
FIELDS = [
    "site_id",
    "event_type",
    "path",
    "user_id",
    "timestamp",
    "event_id",
    *PAGE_TEXT_FIELDS,
    "props",
    "ip",
]
STRING_FIELDS = ["site_id", "event_type", "path", "user_id", *PAGE_TEXT_FIELDS]
# What broken clients put in strings: C0 controls, DEL, NUL, and halves of surrogate pairs
# (a JavaScript substring that cut an emoji).
BAD_CHARACTERS = [chr(code) for code in range(0x20)] + ["\x7f", "\ud83d", "\ude00", "\udfff", "\ud800"]

any_text = st.text() | st.builds(
    lambda before, bad, after: before + bad + after, st.text(), st.sampled_from(BAD_CHARACTERS), st.text()
)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=8,
)
timestamps = (
    st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat)
    | st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?([+-][0-9]{2}:[0-9]{2}|Z)?\Z")
    | any_text
)
field_values = {
    "site_id": st.text(string.printable, min_size=1, max_size=130) | json_values,
    "event_type": st.text(min_size=1, max_size=70) | json_values,
    "path": any_text | json_values,
    "user_id": any_text | json_values,
    "timestamp": timestamps | json_values,
    "event_id": st.uuids().map(str) | json_values,
    **dict.fromkeys(PAGE_TEXT_FIELDS, any_text | json_values),
    "url": st.builds("https://shop.example/{}".format, any_text) | any_text | json_values,
    "props": st.dictionaries(any_text, scalars | json_values, max_size=5) | json_values,
    "ip": st.ip_addresses().map(str) | any_text | json_values,
}
# Objects shaped like events: each field present or not, with a plausible or any value.
event_like = st.fixed_dictionaries({}, optional={name: field_values[name] for name in FIELDS})


@pytest.fixture(scope="module", autouse=True)
def app_context():
    """The error body is rendered by Flask, as the service renders it."""
    with Flask(__name__).app_context():
        yield


def assert_contract_400(error: ValidationError) -> None:
    response = handle_validation_error(error)
    body = response.get_json()
    assert response.status_code == 400
    assert body["status"] == "error"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body.get("errors", {}), dict)


def assert_storable(message: dict) -> None:
    """What the queue and MongoDB need of an accepted event."""
    orjson.dumps(message)  # refuses lone surrogates, as the queue would
    for name in STRING_FIELDS:
        value = message.get(name)
        assert value is None or not any(character in value for character in BAD_CHARACTERS)
    for key, value in (message.get("props") or {}).items():
        assert not any(character in key + str(value) for character in BAD_CHARACTERS)
    assert "ip" not in message
    datetime.fromisoformat(message["timestamp"]).astimezone(UTC).date()  # its UTC day exists


def check_event(payload: object) -> None:
    try:
        message = to_message(payload)
    except ValidationError as error:
        assert_contract_400(error)
    else:
        assert_storable(message)


@bounded
@given(json_values)
def test_any_json_value_is_an_event_or_a_400(payload):
    check_event(payload)


@bounded
@given(event_like)
def test_any_event_shaped_object_is_an_event_or_a_400(payload):
    check_event(payload)


@bounded
@given(
    st.sampled_from(STRING_FIELDS),
    st.text(max_size=20),
    st.sampled_from(BAD_CHARACTERS),
    st.text(max_size=20),
)
@example("site_id", "site", "\n", "")  # a final newline, which a regex's `$` lets through
def test_a_string_with_a_control_character_or_lone_surrogate_is_refused(field, before, bad, after):
    with pytest.raises(ValidationError) as caught:
        to_message(make_event(**{field: before + bad + after}))
    assert list(caught.value.normalized_messages()) == [field]
    assert_contract_400(caught.value)


@bounded
@given(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.timezones()
    )
)
def test_a_timestamp_at_any_offset_is_stored_on_a_utc_day_or_refused(moment):
    check_event(make_event(timestamp=moment.isoformat()))


@bounded
@given(
    st.dictionaries(st.sampled_from(["events", "other"]), json_values)
    | st.fixed_dictionaries({"events": json_values})
)
@example({"events": 5})  # no length to compare with the batch limit
def test_any_batch_envelope_is_a_batch_or_a_400(envelope):
    try:
        batch = load_batch(envelope)
    except ValidationError as error:
        assert_contract_400(error)
    else:
        assert 1 <= len(batch.messages) + len(batch.errors) <= MAX_BATCH_EVENTS
        for message in batch.messages:
            assert_storable(message)


@settings(bounded, max_examples=50)
@given(st.lists(event_like | json_values, min_size=1, max_size=5))
@example([None, make_event()])  # a null event among valid ones
def test_every_event_of_a_batch_is_a_message_or_an_error_by_index(items):
    batch = load_batch({"events": items})
    assert len(batch.messages) + len(batch.errors) == len(items)
    assert set(batch.errors) <= {str(index) for index in range(len(items))}
    for message in batch.messages:
        assert_storable(message)
