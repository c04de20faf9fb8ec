"""An event body loaded in one pass, by a plan compiled from its marshmallow schema's fields.

Marshmallow pays, per field of every event, for its general machinery (an error store, a
getter, the field's validators wrapped anew on each call): most of what loading a plain
event costs. The plan does for each field what the field does and nothing more: a text
field's type and length, a time's parsing and zone, a UUID's; each field's own validators,
called as they are; any other kind of field (props) by its own `deserialize`; the schema's
post-load hooks. It only ever accepts: at the first value it does not find plainly valid it
gives up, and the caller loads the event with the schema, which refuses it with the
contract's messages for every field at fault. So both load the same event, and a refusal is
always the schema's (tests/unit/ingestion/test_fast_event.py compares the two).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from marshmallow.decorators import POST_LOAD, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
from marshmallow.utils import missing

# A field's value loaded, or GIVE_UP: the plan leaves the event to the schema.
Step = Callable[[Any], Any]
GIVE_UP: Any = object()


def _text_step(field: fields.String) -> Step:
    """A str within the field's lengths, then its other validators."""
    lengths = [rule for rule in field.validators if isinstance(rule, validate.Length)]
    if any(rule.equal is not None for rule in lengths):
        return field.deserialize
    others = [rule for rule in field.validators if not isinstance(rule, validate.Length)]
    low = max((rule.min for rule in lengths if rule.min is not None), default=0)
    high = min((rule.max for rule in lengths if rule.max is not None), default=None)

    def step(value: Any) -> Any:
        if type(value) is not str or len(value) < low or (high is not None and len(value) > high):
            return GIVE_UP
        for rule in others:
            rule(value)
        return value

    return step


def _time_step(field: fields.AwareDateTime) -> Step:
    """A time as the field parses it, a naive one put in its zone, then its validators."""
    parse = field.DESERIALIZATION_FUNCS.get(field.format or field.DEFAULT_FORMAT)
    zone = field.default_timezone
    if parse is None or zone is None:
        return field.deserialize

    def step(value: Any) -> Any:
        if type(value) is not str:
            return GIVE_UP
        try:
            moment = parse(value)
        except ValueError:
            return GIVE_UP
        if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
            moment = moment.replace(tzinfo=zone)
        for rule in field.validators:
            rule(moment)
        return moment

    return step


def _uuid_step(field: fields.UUID) -> Step:
    if field.validators:
        return field.deserialize

    def step(value: Any) -> Any:
        if type(value) is not str:
            return GIVE_UP
        try:
            return uuid.UUID(value)
        except ValueError:
            return GIVE_UP

    return step


def _step(field: fields.Field) -> Step:
    if getattr(field, "pre_load", None) or getattr(field, "post_load", None):
        return field.deserialize
    if type(field) is fields.String:
        return _text_step(field)
    if type(field) is fields.AwareDateTime:
        return _time_step(field)
    if type(field) is fields.UUID:
        return _uuid_step(field)
    return field.deserialize


UNCOMPILED = "only a schema of fields and plain post-load hooks that excludes unknown keys compiles"


class FastLoader:
    """What `schema.load` gives for a plainly valid payload; None where the schema must decide."""

    def __init__(self, schema: Schema) -> None:
        hooks = schema._hooks
        plain = all(not many and not options.get("pass_original") for _, many, options in hooks[POST_LOAD])
        checks = hooks[PRE_LOAD] or hooks[VALIDATES] or hooks[VALIDATES_SCHEMA]
        # Unknown keys are left out, as EXCLUDE does: RAISE refuses them, INCLUDE keeps them.
        if schema.many or schema.partial or schema.unknown != EXCLUDE or checks or not plain:
            raise ValueError(UNCOMPILED)
        self._post_load = [getattr(schema, name) for name, _, _ in hooks[POST_LOAD]]
        self._fields = [
            (field.data_key or name, name, field, _step(field)) for name, field in schema.load_fields.items()
        ]

    def load(self, payload: Any) -> dict[str, Any] | None:
        if not isinstance(payload, Mapping):
            return None
        event: dict[str, Any] = {}
        try:
            for key, name, field, step in self._fields:
                value = payload.get(key, missing)
                if value is missing:
                    if field.required:
                        return None
                    if field.load_default is not missing:
                        default = field.load_default
                        event[name] = default() if callable(default) else default
                    continue
                if value is None:
                    if not field.allow_none:
                        return None
                    event[name] = None
                    continue
                loaded = step(value)
                if loaded is GIVE_UP:
                    return None
                event[name] = loaded
            for hook in self._post_load:
                event = hook(event, many=False, partial=None, unknown=EXCLUDE)
        except ValidationError:
            return None
        return event
