"""Bodies read within a size and a time bound; what a refusal leaves unread is discarded."""

import json
import time
from dataclasses import replace
from types import SimpleNamespace

import gevent
import pytest

from app.ingestion import connection
from app.ingestion.body_reader import DISCARD_LIMIT_BYTES
from app.ingestion.views import committer
from tools.factories import make_event

TIMEOUT = 0.3


@pytest.fixture
def settings(settings):
    return replace(settings, body_read_timeout_seconds=TIMEOUT)


@pytest.fixture(autouse=True)
def enqueued(monkeypatch):
    calls: list[list[dict]] = []
    monkeypatch.setattr(committer, "enqueue", calls.append)
    return calls


@pytest.fixture
def server_request():
    """Stands for the gunicorn request being served: notes whether the app asked to close."""
    served = SimpleNamespace(closed=False)
    served.force_close = lambda: setattr(served, "closed", True)
    connection.serve(served)
    yield served
    connection.serve(None)


class Stream:
    """A request body as a socket delivers it: `pieces`, each after `pause` seconds."""

    def __init__(self, pieces, pause=0.0):
        self.pieces = list(pieces)
        self.pause = pause

    def read(self, size=-1):
        if self.pause:
            gevent.sleep(self.pause)  # a cooperative wait, like a read on a gevent socket
        return self.pieces.pop(0) if self.pieces else b""

    @property
    def left(self):
        return sum(map(len, self.pieces))


def post_stream(client, stream, length=None):
    """POST a streamed body: with a Content-Length, or chunked as the server ends it."""
    headers = {"Content-Type": "application/json"}
    overrides = {"wsgi.input": stream}
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
        overrides["wsgi.input_terminated"] = True
    else:
        overrides["CONTENT_LENGTH"] = str(length)
    return client.post("/event", headers=headers, environ_overrides=overrides)


def test_a_chunked_body_over_the_limit_is_413_not_cut_to_the_limit(ingestion, settings, enqueued):
    # JSON padded with spaces past the limit: its first max_event_bytes alone are valid JSON.
    body = json.dumps(make_event()).encode() + b" " * settings.max_event_bytes
    response = post_stream(ingestion, Stream([body[i : i + 1000] for i in range(0, len(body), 1000)]))
    assert response.status_code == 413
    assert response.get_json() == {
        "status": "error",
        "message": f"Request body is larger than {settings.max_event_bytes} bytes",
    }
    assert enqueued == []


def test_a_chunked_body_within_the_limit_is_accepted(ingestion, enqueued):
    body = json.dumps(make_event()).encode()
    response = post_stream(ingestion, Stream([body[:10], body[10:]]))
    assert response.status_code == 200
    assert len(enqueued) == 1


def test_the_rest_of_a_refused_body_is_discarded_and_the_connection_kept(ingestion, server_request):
    stream = Stream([b" " * 100_000] * 30)
    response = post_stream(ingestion, stream, length=3_000_000)
    assert response.status_code == 413
    assert stream.left == 0
    assert not server_request.closed


def test_a_body_beyond_the_discard_limit_is_not_read_and_its_connection_closes(ingestion, server_request):
    stream = Stream([b" " * 100_000] * 3)
    response = post_stream(ingestion, stream, length=DISCARD_LIMIT_BYTES + 1)
    assert response.status_code == 413
    assert stream.left == 300_000
    assert server_request.closed


def test_an_endless_refused_body_is_discarded_up_to_the_limit_then_closed(ingestion, server_request):
    piece = b" " * 1024 * 1024
    stream = Stream([piece] * (DISCARD_LIMIT_BYTES // len(piece) + 10))
    response = post_stream(ingestion, stream)
    assert response.status_code == 413
    assert 0 < stream.left < 10 * len(piece)
    assert server_request.closed


def test_any_refusal_discards_the_unread_body(ingestion, server_request):
    stream = Stream([b"site_id=a"] * 10)
    response = ingestion.post(
        "/event",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "90"},
    )
    assert response.status_code == 415
    assert stream.left == 0
    assert not server_request.closed


def test_a_stalled_body_is_408_after_the_timeout_and_closes_its_connection(
    ingestion, server_request, enqueued
):
    started = time.monotonic()
    response = post_stream(ingestion, Stream([b"{"], pause=60), length=100)
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 1
    assert response.status_code == 408
    assert response.get_json() == {
        "status": "error",
        "message": f"Request body not received within {TIMEOUT:g} seconds",
    }
    assert server_request.closed
    assert enqueued == []


def test_the_timeout_bounds_the_whole_body_not_each_read(ingestion, server_request):
    # Each piece comes well within the timeout; all of them do not.
    pieces = [b" "] * int(4 * TIMEOUT / 0.05)
    started = time.monotonic()
    response = post_stream(ingestion, Stream(pieces, pause=0.05), length=len(pieces))
    assert response.status_code == 408
    assert time.monotonic() - started < TIMEOUT + 1
    assert server_request.closed
