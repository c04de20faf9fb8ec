"""The event schema's compiled plan (app/ingestion/fast_event.py) loads what the schema loads,
and leaves everything else to the schema, whose errors the client gets."""

import string
import uuid
from collections import Counter
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import (
    EXCLUDE,
    INCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
)

from app.ingestion import schemas
from app.ingestion.fast_event import UNCOMPILED, FastLoader
from app.ingestion.schemas import event_schema, fast_event_loader, load_batch, load_event
from tests.unit.ingestion.test_schema_properties import field_values, json_values
from tools.factories import make_event

# Each kind of field the plan handles itself, valid, as clients send them.
TAKEN = [
    make_event(),
    make_event(timestamp="2025-11-15T10:00:00"),
    make_event(timestamp="2025-11-15T01:30:00.123456+02:00"),
    make_event(event_id=str(uuid.UUID(int=7))),
    make_event(path=None, url="https://shop.example/pricing?plan=pro", referrer="https://search.example/"),
    make_event(path="", user_id="", url=None, title="Prices 💶", screen="1920x1080", language="fr-CH"),
    make_event(sent_at="2025-11-15T10:00:02Z", props={"plan": "pro", "seats": 3, "trial": False}),
    make_event(user_agent="Mozilla/5.0", ip="2001:db8::1", unknown_field={"ignored": True}),
    {**make_event(), "path": None, "user_id": None, "props": None, "sent_at": None},
]


def schema_load(payload: object) -> dict | ValidationError:
    try:
        return event_schema.load(payload)  # type: ignore[arg-type]
    except ValidationError as error:
        return error


def same_load(payload: object) -> None:
    """The plan gives up, or gives the schema's event, field for field and in its order."""
    taken = fast_event_loader.load(payload)
    if taken is None:
        return
    loaded = schema_load(payload)
    assert not isinstance(loaded, ValidationError), f"the plan took what the schema refuses: {loaded}"
    if "event_id" not in payload:  # type: ignore[operator]
        assert taken.pop("event_id").version == loaded.pop("event_id").version == 4
    assert list(taken.items()) == list(loaded.items())


@pytest.mark.parametrize("payload", TAKEN)
def test_the_plan_loads_a_plain_event_as_the_schema_does(payload):
    assert fast_event_loader.load(payload) is not None
    same_load(payload)


# Text as pages send it: no control character nor half of a surrogate pair.
page_text = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=40)
valid_times = st.datetimes(
    datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.one_of(st.none(), st.timezones())
).map(datetime.isoformat)
valid_values = {
    "path": page_text | st.none(),
    "user_id": page_text | st.none(),
    "event_id": st.uuids().map(str),
    **dict.fromkeys(["referrer", "title", "screen", "language", "user_agent"], page_text | st.none()),
    "url": st.builds("https://shop.example/{}".format, st.text(string.ascii_letters + "/?=&-", max_size=30)),
    "props": st.dictionaries(
        st.text(string.ascii_letters, min_size=1, max_size=10), st.integers() | page_text
    )
    | st.none(),
    "ip": st.ip_addresses().map(str) | st.none(),
    "sent_at": valid_times | st.none(),
}
REQUIRED = {
    "site_id": st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=128),
    "event_type": st.text(string.ascii_letters + "_", min_size=1, max_size=64),
    "timestamp": valid_times,
}
# Events the plan has every field to take: a valid site, type and time, and any other field
# absent or valid.
plain_events = st.fixed_dictionaries(REQUIRED, optional=valid_values)
# Half of them with one field given any value: the plan must then give up, or load what the
# schema loads.
spoiled_events = st.builds(
    lambda event, spoiled: {**event, spoiled[0]: spoiled[1]},
    plain_events,
    st.sampled_from([*REQUIRED, *valid_values]).flatmap(
        lambda name: st.tuples(st.just(name), field_values.get(name, json_values))
    ),
)
event_like_the_plan_takes = plain_events | spoiled_events


def test_the_plan_never_takes_an_event_the_schema_refuses_nor_loads_it_otherwise():
    """The comparison means nothing when the plan gives up: it must take at least half of
    the examples (about three quarters, with these strategies)."""
    taken: Counter[bool] = Counter()

    @settings(max_examples=300, deadline=None, database=None)
    @given(event_like_the_plan_takes)
    def compare(payload):
        taken[fast_event_loader.load(payload) is not None] += 1
        same_load(payload)

    compare()
    assert taken[True] >= sum(taken.values()) / 2, taken


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_the_plan_leaves_any_other_json_value_to_the_schema(payload):
    same_load(payload)


@pytest.mark.parametrize(
    "payload",
    [
        make_event(site_id=None),
        make_event(site_id=""),
        make_event(site_id="x" * 129),
        make_event(event_type=7),
        make_event(path="/a\nb"),
        make_event(title="half \ud83d"),
        make_event(timestamp="yesterday"),
        make_event(timestamp="0001-01-01T00:00:00+01:00"),
        make_event(event_id="not-a-uuid"),
        {**make_event(), "event_id": None},
        make_event(url="/relative"),
        make_event(ip="999.1.1.1"),
        make_event(props={"a.b": 1}),
        make_event(sent_at=5),
    ],
)
def test_an_invalid_event_is_refused_with_the_schemas_errors(payload):
    assert fast_event_loader.load(payload) is None
    refused = schema_load(payload)
    assert isinstance(refused, ValidationError)
    with pytest.raises(ValidationError) as caught:
        load_event(payload)
    assert caught.value.normalized_messages() == refused.normalized_messages()


def test_a_schema_with_checks_the_plan_cannot_make_is_not_compiled():
    class Preloaded(Schema):
        name = fields.String()

        @pre_load
        def strip(self, data, **kwargs):
            return data

    with pytest.raises(ValueError, match=UNCOMPILED):
        FastLoader(Preloaded())
    with pytest.raises(ValueError, match=UNCOMPILED):
        FastLoader(event_schema.__class__(many=True))
    for unknown in (RAISE, INCLUDE):  # the plan leaves unknown keys out
        with pytest.raises(ValueError, match=UNCOMPILED):
            FastLoader(event_schema.__class__(unknown=unknown))


def test_a_fields_own_validators_and_hooks_are_kept():
    class Shouted(Schema):
        class Meta:
            unknown = EXCLUDE

        word = fields.String(
            required=True, validate=[validate.Length(max=5), validate.OneOf(["HEY", "HELLO"])]
        )

        @post_load
        def lower(self, data, **kwargs):
            return {**data, "word": data["word"].lower()}

    loader = FastLoader(Shouted())
    assert loader.load({"word": "HEY", "other": 1}) == {"word": "hey"}
    assert loader.load({"word": "HI"}) is None
    assert loader.load({"word": "HELLOS"}) is None


class Never:
    """A plan that takes nothing: every event goes to the schema, as before the plan."""

    def load(self, payload: object) -> None:
        return None


@pytest.mark.parametrize(
    "events",
    [
        [*TAKEN, make_event(site_id="other")],
        [make_event(), make_event(path="/a\nb"), {**make_event(), "event_id": None}, make_event(title=None)],
        [None, make_event(), 7],
    ],
    ids=["all plain", "some invalid", "not objects"],
)
def test_a_batch_is_loaded_as_the_schema_loads_it(events, monkeypatch):
    events = [
        {**event, "event_id": str(uuid.UUID(int=index))}
        if isinstance(event, dict) and "event_id" not in event
        else event
        for index, event in enumerate(events)
    ]
    planned = load_batch({"events": events})
    monkeypatch.setattr(schemas, "fast_event_loader", Never())
    assert planned == load_batch({"events": events})
