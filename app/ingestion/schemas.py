"""Marshmallow schemas for the payloads ingestion accepts and the messages it queues."""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from app.ingestion.fast_event import FastLoader
from app.web.errors import MISSING_MESSAGE

# The most events one `POST /events` may carry (the contract's figure, not a setting).
MAX_BATCH_EVENTS = 500


class WholeText(validate.Regexp):
    """A pattern the whole string must match. `re.match` lets `$` match before a final
    newline (it let "site\n" through); `fullmatch` does not, and the pattern itself stays one
    that JSON Schema's regular expressions read the same way, for the OpenAPI document."""

    def __call__(self, value: Any) -> Any:
        pattern: re.Pattern[Any] = self.regex
        if pattern.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


NO_CONTROL_CHARACTERS = WholeText(r"^[^\x00-\x1f\x7f]*$", error="Must not contain control characters.")
# A lone UTF-16 surrogate (`"\ud83d"`: a JavaScript substring that cut an emoji in half) is
# valid JSON but no Unicode text: it cannot be written to the queue or stored.
NO_LONE_SURROGATES = WholeText(
    r"^[^\ud800-\udfff]*$", error="Must be valid Unicode text (it holds half of a UTF-16 surrogate pair)."
)
TEXT = [NO_CONTROL_CHARACTERS, NO_LONE_SURROGATES]


def _required_string(max_length: int, *extra: validate.Validator) -> fields.String:
    # null is reported like an absent field: to a client both mean "you did not send it".
    return fields.String(
        required=True,
        validate=[validate.Length(min=1, max=max_length), *extra],
        error_messages={"required": MISSING_MESSAGE, "null": MISSING_MESSAGE},
    )


def _exists_in_utc(moment: datetime) -> None:
    """A time whose offset pushes it past year 1 or 9999 (`0001-01-01T00:00:00+01:00`, what
    .NET's DateTime.MinValue becomes) has no UTC day to be counted on."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError("Must be a time that exists in UTC (years 1 to 9999).") from None


def _optional_text(max_length: int, *extra: Callable[[str], Any]) -> fields.String:
    return fields.String(allow_none=True, validate=[validate.Length(max=max_length), *TEXT, *extra])


def _web_address(value: str) -> None:
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed IPv6 bracket
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Must be an absolute http(s) URL.")


def _ip_address(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError("Must be an IPv4 or IPv6 address.") from None


# Plausible's bounds on custom properties, which its users already fit in.
MAX_PROPS = 30
MAX_PROP_KEY_BYTES = 300
MAX_PROP_VALUE_BYTES = 2000
# What BSON stores as a number: a larger integer would fail the insert, not the request.
INT64 = range(-(2**63), 2**63)


class Props(fields.Dict):
    """An event's custom properties: a flat object of scalars, within Plausible's bounds.

    A refusal names the key at fault (`{"props": {"plan": ["..."]}}`), or the whole when it
    is not an object or has too many keys (`{"props": ["..."]}`).
    """

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        if not isinstance(value, dict):
            raise ValidationError("Must be an object of text, number, boolean or null values.")
        if len(value) > MAX_PROPS:
            raise ValidationError(f"Must have at most {MAX_PROPS} keys.")
        errors = {}
        for key, item in value.items():
            problem = _prop_key_problem(key) or _prop_value_problem(item)
            if problem:
                errors[key] = [problem]
        if errors:
            raise ValidationError(errors)
        return value


def _text_problem(text: str) -> str | None:
    for rule in TEXT:
        try:
            rule(text)
        except ValidationError as error:
            return str(error.messages[0])
    return None


def _prop_key_problem(key: str) -> str | None:
    if not 1 <= len(key.encode("utf-8", "surrogatepass")) <= MAX_PROP_KEY_BYTES:
        return f"The key must be 1 to {MAX_PROP_KEY_BYTES} bytes of UTF-8."
    # MongoDB reads a dot as a path and a leading `$` as an operator; FerretDB refuses both.
    if "." in key or key.startswith("$"):
        return "The key must not contain '.' nor begin with '$'."
    return _text_problem(key)


def _prop_value_problem(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if value in INT64 else "A number must fit in 64 bits."
    if isinstance(value, float):
        return None if math.isfinite(value) else "A number must be finite."
    if isinstance(value, str):
        if len(value.encode("utf-8", "surrogatepass")) > MAX_PROP_VALUE_BYTES:
            return f"A text value must be at most {MAX_PROP_VALUE_BYTES} bytes of UTF-8."
        return _text_problem(value)
    return "Must be text, a number, a boolean or null: nothing nested."


class EventSchema(Schema):
    """One analytics event, as `POST /event` receives it and the queue carries it.

    Unknown fields are ignored so that clients sending newer fields keep working.
    """

    class Meta:
        unknown = EXCLUDE
        ordered = True

    site_id = _required_string(128, *TEXT)
    event_type = _required_string(64, *TEXT)
    path = fields.String(allow_none=True, validate=[validate.Length(max=2048), *TEXT])
    user_id = fields.String(allow_none=True, validate=[validate.Length(max=256), *TEXT])
    timestamp = fields.AwareDateTime(
        required=True,
        default_timezone=UTC,
        validate=_exists_in_utc,
        error_messages={"required": MISSING_MESSAGE, "null": MISSING_MESSAGE},
    )
    # Optional: the client's clock when it sent the event. With it, `timestamp` is moved by
    # that clock's error (the receipt time minus `sent_at`), so a wrong clock dates nothing
    # wrong; it is not queued.
    sent_at = fields.AwareDateTime(allow_none=True, default_timezone=UTC, validate=_exists_in_utc)
    # Optional: a client that retries with the same id is never counted twice.
    event_id = fields.UUID(load_default=uuid.uuid4)
    # What a page knows (docs/api.md); `path` is taken from `url` when it is not sent.
    url = _optional_text(2048, _web_address)
    referrer = _optional_text(2048)
    title = _optional_text(512)
    screen = _optional_text(32)
    language = _optional_text(35)
    props = Props(allow_none=True)
    # The visitor's, when a server sends on their behalf; honoured only from a server (see
    # app/visitors.py). The address never leaves ingestion: `to_message` drops it.
    user_agent = _optional_text(1024)
    ip = fields.String(allow_none=True, validate=[validate.Length(max=64), _ip_address])

    @post_load
    def _path_from_url(self, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if event.get("path") is None and event.get("url"):
            event["path"] = urlsplit(event["url"]).path or "/"
        return event


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The event timestamps a request accepts: from `max_age_days` before the server's clock,
    read once per request, to `max_ahead_seconds` after it, edges included.

    Only clients' events meet it: what the service accepted once (a dead letter replayed, a
    batch the ledger sends again, a rollup rebuilt) is never refused later for its age.
    """

    earliest: datetime
    latest: datetime
    max_age_days: int
    max_ahead_seconds: int
    now: datetime

    @classmethod
    def around(cls, now: datetime, max_age_days: int, max_ahead_seconds: int) -> TimeWindow:
        # A bound beyond the calendar is an operator's "accept everything": the calendar's end.
        try:
            earliest = now - timedelta(days=max_age_days)
        except OverflowError:
            earliest = datetime.min.replace(tzinfo=UTC)
        try:
            latest = now + timedelta(seconds=max_ahead_seconds)
        except OverflowError:
            latest = datetime.max.replace(tzinfo=UTC)
        return cls(earliest, latest, max_age_days, max_ahead_seconds, now)

    def __contains__(self, moment: datetime) -> bool:
        return self.earliest <= moment <= self.latest

    def dated(self, event: dict[str, Any]) -> datetime:
        """The event's time on the server's clock: its `timestamp`, moved by the client's clock
        error when it sent `sent_at`. Raises the refusal when that is outside the window."""
        moment = event["timestamp"]
        if event.get("sent_at"):
            try:
                moment += self.now - event["sent_at"]
            except OverflowError:
                raise self.refusal() from None
        if moment not in self:
            raise self.refusal()
        return moment

    def refusal(self) -> ValidationError:
        """The error of a timestamp outside the window, naming the window."""
        return ValidationError(
            f"Must be between {self.earliest.isoformat(timespec='seconds')} and "
            f"{self.latest.isoformat(timespec='seconds')}: at most {self.max_age_days} days before "
            f"the server's time and {self.max_ahead_seconds} seconds after it.",
            "timestamp",
        )


# Fills in, in place, what ingestion derives of a valid event from its request
# (app/ingestion/derivation.py), or gives why the event is a bot's; it may read the
# visitor's address, which is dropped after.
Derive = Callable[[dict[str, Any]], str | None]


class BotEventError(Exception):
    """A valid event of a bot's: dropped, and answered as if accepted."""

    def __init__(self, message: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.message, self.reason = message, reason


def to_message(
    payload: Any, window: TimeWindow | None = None, derive: Derive | None = None
) -> dict[str, Any]:
    """A client's event as the queue carries it: validated, with an event_id, as plain JSON.

    Raises ValidationError for an invalid event, or one outside the window when one is given
    (always, for a client's event; tests and benchmarks build messages of any date without);
    BotEventError when `derive` finds it a bot's.
    """
    event = load_event(payload)
    if window:
        event["timestamp"] = window.dated(event)
    return _as_message(event, derive)


def load_event(payload: Any) -> dict[str, Any]:
    """`event_schema.load(payload)`, by its compiled plan when the event is plainly valid
    (app/ingestion/fast_event.py); the schema itself decides on anything else, so an invalid
    event's errors are always the schema's."""
    event = fast_event_loader.load(payload)
    return event_schema.load(payload) if event is None else event


def load_each(events: list[Any]) -> tuple[list[dict[str, Any] | None], dict[int, dict[str, Any]]]:
    """Each event loaded on its own by `load_event` (None for an invalid one), and the
    errors by index as the contract's error body gives them.

    Not one `many=True` load: marshmallow skips every `post_load` hook of such a load when
    one item fails, and the valid events beside it would lose the path taken from their url.
    """
    loaded: list[dict[str, Any] | None] = []
    errors: dict[int, dict[str, Any]] = {}
    for index, payload in enumerate(events):
        try:
            loaded.append(load_event(payload))
        except ValidationError as error:
            loaded.append(None)
            errors[index] = cast(dict[str, Any], error.messages)
    return loaded, errors


def _as_message(event: dict[str, Any], derive: Derive | None = None) -> dict[str, Any]:
    # What `event_schema.dump` gives, without a second pass through the schema on the hot
    # path: the two fields JSON cannot carry as loaded, in their ISO and hyphenated forms,
    # and never the visitor's address.
    message = {**event, "timestamp": event["timestamp"].isoformat(), "event_id": str(event["event_id"])}
    reason = derive(message) if derive else None
    message.pop("ip", None)
    message.pop("sent_at", None)
    if reason:
        raise BotEventError(message, reason)
    return message


BATCH_SIZE_MESSAGE = "A batch holds {min} to {max} events."


class BatchSchema(Schema):
    """The envelope of `POST /events`: `{"events": [...]}`; each event is checked on its own."""

    # More events than the limit is a 400, not a 413: 413 is about bytes, while this is a
    # rule on the content, like a field's maximum length, and the client fixes it by splitting.
    events = fields.List(
        # A null item is an invalid event, reported under its index like any other.
        fields.Raw(allow_none=True),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH_EVENTS, error=BATCH_SIZE_MESSAGE),
        error_messages={"required": MISSING_MESSAGE, "null": MISSING_MESSAGE},
    )


@dataclass
class Batch:
    """A batch split into the queue messages of its valid events and the errors of the rest."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    # Validation messages by the event's index in the batch (a string: it becomes a JSON key).
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How many valid events `gate` refused for their site.
    refused: int = 0
    # Bots' events, dropped (answered as accepted, never queued), by index.
    dropped: dict[str, BotEventError] = field(default_factory=dict)

    def event_ids(self) -> dict[str, str]:
        """The ids of the events queued, by their index in the batch (as `errors`)."""
        indices = (str(index) for index in range(len(self.messages) + len(self.errors) + len(self.dropped)))
        queued = (index for index in indices if index not in self.errors and index not in self.dropped)
        return {index: message["event_id"] for index, message in zip(queued, self.messages, strict=True)}


def load_batch(
    envelope: dict[str, Any],
    window: TimeWindow | None = None,
    gate: Callable[[str], str | None] | None = None,
    derive: Derive | None = None,
) -> Batch:
    """Validate each event of a `POST /events` envelope; a bad envelope raises ValidationError.
    `gate` gives why an event's site is refused (None: admitted); such events are reported
    with the invalid ones; `derive` completes each admitted event, or drops it as a bot's.

    Each event is loaded on its own, by the schema's compiled plan when it takes it, its
    errors kept under its index. An event outside the window (when one is given) is
    rejected like any other invalid event."""
    items = envelope.get("events")
    if isinstance(items, list) and len(items) > MAX_BATCH_EVENTS:  # before walking every item
        raise ValidationError(BATCH_SIZE_MESSAGE.format(min=1, max=MAX_BATCH_EVENTS), "events")
    events = batch_schema.load(envelope)["events"]
    loaded, errors = load_each(events)
    batch = Batch()
    for index, event in enumerate(loaded):
        if event is None:
            continue
        if window:
            try:
                event["timestamp"] = window.dated(event)
            except ValidationError as outside:
                errors[index] = outside.normalized_messages()
                continue
        refusal = gate(event["site_id"]) if gate else None
        if refusal:
            errors[index] = {"site_id": [refusal]}
            batch.refused += 1
            continue
        try:
            batch.messages.append(_as_message(event, derive))
        except BotEventError as dropped:
            batch.dropped[str(index)] = dropped
    batch.errors = {str(index): errors[index] for index in sorted(errors)}
    return batch


event_schema = EventSchema()
fast_event_loader = FastLoader(event_schema)
batch_schema = BatchSchema()
