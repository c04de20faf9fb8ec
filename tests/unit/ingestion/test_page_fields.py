"""The fields a page knows (`url`, `referrer`, `title`, `screen`, `language`, `props`) and a
server's `user_agent` and `ip`: their rules, and what the queue carries of them."""

import json

import pytest
from marshmallow import ValidationError

from app.ingestion.schemas import MAX_PROPS, event_schema, load_batch, to_message
from app.web.errors import validation_message
from tools.factories import make_event

PAGE = {
    "url": "https://shop.example/pricing?plan=pro#faq",
    "referrer": "https://www.google.com/",
    "title": "Pricing",
    "screen": "1920x1080",
    "language": "de-CH",
    "props": {"plan": "pro", "seats": 3, "price": 9.5, "trial": True, "coupon": None},
}


def load_errors(payload: dict) -> dict:
    with pytest.raises(ValidationError) as caught:
        event_schema.load(payload)
    return caught.value.normalized_messages()


def test_a_page_s_fields_reach_the_queued_message_as_sent():
    message = to_message(make_event(**PAGE))
    assert {name: message[name] for name in PAGE} == PAGE
    assert json.loads(json.dumps(message)) == message


def test_the_path_is_the_url_s_path_when_not_sent():
    message = to_message(make_event(path=None, url="https://shop.example/a/b?x=1#top"))
    assert message["path"] == "/a/b"


def test_a_url_without_a_path_gives_the_root():
    assert to_message(make_event(path=None, url="https://shop.example"))["path"] == "/"


def test_a_path_sent_is_kept_over_the_url_s():
    assert to_message(make_event(path="/mine", url="https://shop.example/theirs"))["path"] == "/mine"


def test_the_queued_message_never_carries_the_address():
    message = to_message(make_event(ip="203.0.113.9", user_agent="Mozilla/5.0"))
    assert "ip" not in message
    assert "203.0.113.9" not in json.dumps(message)
    assert message["user_agent"] == "Mozilla/5.0"


def test_a_batch_s_messages_never_carry_the_address():
    batch = load_batch({"events": [make_event(ip="2001:db8::1"), make_event(ip="203.0.113.9")]})
    assert [("ip" in message) for message in batch.messages] == [False, False]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "/relative/path"),
        ("url", "ftp://files.example/a"),
        ("url", "javascript:alert(1)"),
        ("url", "https://"),
        ("url", "http://[::1/unclosed"),
        ("url", "https://shop.example/" + "a" * 2048),
        ("url", "https://shop.example/\n"),
        ("referrer", "r" * 2049),
        ("title", "t" * 513),
        ("title", "cut \ud83d"),
        ("screen", "x" * 33),
        ("language", "l" * 36),
        ("user_agent", "u" * 1025),
        ("user_agent", "Mozilla\x00"),
        ("ip", "not-an-address"),
        ("ip", "203.0.113.300"),
        ("ip", 3405803785),
        ("props", "plan=pro"),
        ("props", ["plan", "pro"]),
    ],
)
def test_a_field_out_of_its_rules_is_refused_by_name(field, value):
    errors = load_errors(make_event(**{field: value}))
    assert list(errors) == [field]
    assert validation_message(errors) == f"Invalid fields: {field}"


def test_the_address_may_be_ipv4_or_ipv6():
    for address in ("203.0.113.9", "2001:db8::1", "::ffff:203.0.113.9"):
        event_schema.load(make_event(ip=address))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("nested", {"a": 1}),
        ("listed", [1, 2]),
        ("long_value", "v" * 2001),
        ("long_value_in_bytes", "é" * 1001),  # 2002 bytes of UTF-8
        ("huge", 2**63),
        ("control", "a\tb"),
        ("cut_emoji", "\ud83d"),
        ("k" * 301, "v"),
        ("é" * 151, "v"),  # 302 bytes
        ("", "v"),
        ("a.b", "v"),
        ("$where", "v"),
        ("tab\tkey", "v"),
    ],
)
def test_a_prop_out_of_bounds_is_refused_naming_its_key(key, value):
    errors = load_errors(make_event(props={"fine": "yes", key: value}))
    assert list(errors) == ["props"]
    assert list(errors["props"]) == [key]
    assert isinstance(errors["props"][key], list)


def test_props_at_their_bounds_are_accepted():
    props: dict[str, object] = {f"{index:0300d}": "v" * 2000 for index in range(MAX_PROPS - 1)}
    props["n"] = -(2**63)
    assert event_schema.load(make_event(props=props))["props"] == props


def test_more_than_thirty_props_are_refused_as_a_whole():
    errors = load_errors(make_event(props={f"k{index}": index for index in range(MAX_PROPS + 1)}))
    assert errors == {"props": [f"Must have at most {MAX_PROPS} keys."]}


def test_a_refused_prop_is_reported_under_its_event_s_index_in_a_batch():
    batch = load_batch({"events": [make_event(), make_event(props={"deep": {"x": 1}})]})
    assert len(batch.messages) == 1
    assert list(batch.errors) == ["1"]
    assert list(batch.errors["1"]["props"]) == ["deep"]
