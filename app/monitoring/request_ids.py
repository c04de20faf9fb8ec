"""Request ids: one per HTTP request, carried into the Celery messages of its events.

A request takes the client's (or its proxy's) `X-Request-ID` when it is a sane token, else a
new one. Group commit puts several requests' events in one message, so a message carries the
ids of all of them in a header, and the worker's lines for that message name them all:
`grep <id>` over the services' and the workers' logs follows one event. Held in a context
variable, so that each gevent greenlet (a request) and each task sees its own.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import uuid
from collections.abc import Iterable
from contextvars import ContextVar, Token

HEADER = "X-Request-ID"
# The message header the ids travel in (`task.request.request_ids` in the worker).
MESSAGE_HEADER = "request_ids"
# What a log line may safely repeat of a client's header: no spaces, quotes or control
# characters, and short.
SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

_current: ContextVar[tuple[str, ...]] = ContextVar("request_ids", default=())


def from_header(value: str | None) -> str:
    """The client's id if it is sane, else a new one."""
    if value is not None and SANE.fullmatch(value):
        return value
    return new_id()


class _Ids:
    """Unique ids, cheap to make: a random prefix for each process and a count. (A uuid4 for
    each request reads the system's randomness every time.)"""

    def __init__(self) -> None:
        self.pid = 0
        self.prefix = ""
        self.count = itertools.count()

    def next(self) -> str:
        if self.pid != os.getpid():  # a forked worker draws its own prefix
            self.pid, self.prefix, self.count = os.getpid(), uuid.uuid4().hex[:16], itertools.count()
        return f"{self.prefix}{next(self.count):x}"


_ids = _Ids()


def new_id() -> str:
    return _ids.next()


def current() -> tuple[str, ...]:
    return _current.get()


def enter(*ids: str) -> Token[tuple[str, ...]]:
    """Make `ids` the current ones (in this greenlet, thread or task) until `leave`."""
    return _current.set(tuple(ids))


def leave(token: Token[tuple[str, ...]]) -> None:
    _current.reset(token)


def gather(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """The ids of several requests, each once, in order."""
    return tuple(dict.fromkeys(request_id for ids in groups for request_id in ids))


class RequestIdFilter(logging.Filter):
    """Gives every record `request_id`: the current ids, comma-separated, or empty."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = ",".join(_current.get())
        return True
