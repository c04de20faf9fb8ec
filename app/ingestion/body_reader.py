"""Read a request body within a size and a time bound, and discard what a refusal leaves.

A client that writes its whole body before it reads (http.client, requests, curl) meets a
reset connection instead of its answer when the server closes with part of the body
unread. gunicorn's gevent worker discards an unread body before the next request of a
kept-alive connection, but closes at once when the connection ends (the client sent
`Connection: close`, HTTP/1.0): so an error answer waits until the rest of the body is
discarded, within bounds (docs/operations.md, "What the ingestion service bounds").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import gevent
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.wrappers import Response as WerkzeugResponse
from werkzeug.wsgi import get_input_stream

from app.ingestion.connection import close_after_answer
from app.settings import current_settings

READ_STEP = 64 * 1024
# The most of a refused body that is read and thrown away so that its client reads the
# answer. Far above any body a working client sends, so a misconfigured one learns why it
# failed; beyond it the connection is closed, and a client still writing sees a reset.
DISCARD_LIMIT_BYTES = 16 * 1024 * 1024
STREAM_KEY = "analytics.body_stream"
DEADLINE_KEY = "analytics.body_deadline"


def read_body(limit: int | None) -> bytes:
    """The whole body, refused with a 413 beyond `limit` bytes (None: no limit), or with a
    408 when it has not arrived within the body read timeout.

    A chunked body is counted as it arrives: its size is known only at its end.
    """
    if limit is not None and (request.content_length or 0) > limit:
        raise too_large(limit)
    stream = _body_stream()
    data = bytearray()
    with _before_deadline():
        while chunk := stream.read(READ_STEP if limit is None else min(READ_STEP, limit + 1 - len(data))):
            data += chunk
            if limit is not None and len(data) > limit:
                raise too_large(limit)
    return bytes(data)


def too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"Request body is larger than {limit} bytes")


def finish_body(response: WerkzeugResponse) -> WerkzeugResponse:
    """After an error answer, discard the unread rest of the body so the client reads the
    answer; when that is cut off by size or time, close the connection after the answer.

    A successful answer read its body whole: it pays nothing here.
    """
    if response.status_code >= 400 and not _discard_rest():
        close_after_answer()
    return response


def _discard_rest() -> bool:
    """Read and drop what is left of the body; False when a bound stopped it first."""
    if (request.content_length or 0) > DISCARD_LIMIT_BYTES:
        return False
    stream = _body_stream()
    discarded = 0
    try:
        with _before_deadline():
            while chunk := stream.read(READ_STEP):
                discarded += len(chunk)
                if discarded > DISCARD_LIMIT_BYTES:
                    return False
    except RequestTimeout:
        return False
    return True


def _body_stream() -> IO[bytes]:
    # gunicorn ends its input stream at the body's end (Content-Length or the last chunk);
    # werkzeug wraps a stream a server does not end (Flask's test client) at Content-Length.
    # One stream per request, so that discarding goes on where reading stopped.
    environ = request.environ
    if STREAM_KEY not in environ:
        environ[STREAM_KEY] = get_input_stream(environ, max_content_length=None)
    stream: IO[bytes] = environ[STREAM_KEY]
    return stream


@contextmanager
def _before_deadline() -> Iterator[None]:
    """Raise a 408 in the block once the body read timeout has passed.

    The time counts from the first read of the body, across reading and discarding: a
    client that trickles a byte now and then is cut off as surely as one that stalls.
    gevent's timeout interrupts a read that waits on the socket (the gevent worker's sockets
    are cooperative); a read that does not wait cannot be stuck.
    """
    seconds = current_settings().body_read_timeout_seconds
    deadline: float = request.environ.setdefault(DEADLINE_KEY, time.monotonic() + seconds)
    expired = RequestTimeout(f"Request body not received within {seconds:g} seconds")
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise expired
    with gevent.Timeout(remaining, expired):
        yield
