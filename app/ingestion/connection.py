"""Let the application ask gunicorn to close a request's connection after the answer.

gunicorn decides alone whether a connection is kept: it drops a `Connection` header that
the application sets. Its `pre_request` hook (gunicorn.conf.py) hands the request it parsed
to `serve`, in a context variable, which is the request's own under gevent (each greenlet,
one per connection, has its own context)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_server_request: ContextVar[Any] = ContextVar("server_request", default=None)


def serve(server_request: Any) -> None:
    """Note the gunicorn request (`gunicorn.http.message.Request`) now being served."""
    _server_request.set(server_request)


def close_after_answer() -> None:
    """Answer with `Connection: close` and close the connection once the answer is sent.

    Outside gunicorn (Flask's test client) there is no connection to close: nothing happens.
    """
    server_request = _server_request.get()
    if server_request is not None:
        server_request.force_close()
