"""Bodies that are too large or too slow, sent the way real clients send them, against the
real ingestion service (gunicorn with gevent): the client always reads its answer, and no
connection is held beyond a bound (docs/operations.md, "What the ingestion service bounds")."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.ingestion.body_reader import DISCARD_LIMIT_BYTES
from tests.integration.client import post_event
from tests.integration.services import serve
from tools.factories import make_event

MIB = 1024 * 1024
# Short, so a stalled client's bound shows within a test's patience.
BODY_READ_TIMEOUT = 2.0
# gunicorn.conf.py's keepalive: gunicorn's own bound on reading a request's head.
KEEPALIVE = 5.0
# Scheduling on a busy machine: added to every bound a test waits for.
SLACK = 4.0
# A link of a few tens of MB/s: the server answers while the client is still writing, as
# it does for a client on a real network (on loopback a body otherwise lands whole in the
# kernel's buffers before the server has looked at its headers).
PIECE = 64 * 1024
PIECE_PAUSE = 0.002
REPEATS = 8


@pytest.fixture(scope="module")
def ingestion(service_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    """An ingestion service of this module's own, with a short body read timeout."""
    env = {**service_env, "BODY_READ_TIMEOUT_SECONDS": str(BODY_READ_TIMEOUT)}
    yield from serve("ingestion", env, run_dir)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 0


def paced(size: int) -> Iterator[bytes]:
    for _ in range(size // PIECE):
        yield b" " * PIECE
        time.sleep(PIECE_PAUSE)


def post_whole_then_read(url: str, size: int, chunked: bool, close: bool) -> str:
    """POST `size` bytes to /event with http.client, which writes the whole body before it
    reads; return the outcome: the status and error body, or the socket error met."""
    host, port = address(url)
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if close:
        headers["Connection"] = "close"
    if not chunked:
        headers["Content-Length"] = str(size)
    try:
        connection.request("POST", "/event", body=paced(size), headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        body = json.loads(response.read())
        return f"{response.status} {body['status']} {sorted(body)}"
    except OSError as error:
        return type(error).__name__
    finally:
        connection.close()


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
@pytest.mark.parametrize(
    ("size", "chunked"),
    [(2 * MIB, False), (8 * MIB, False), (2 * MIB, True)],
    ids=["2MiB", "8MiB", "2MiB-chunked"],
)
def test_a_client_writing_an_oversized_body_whole_reads_its_413(ingestion, size, chunked, close):
    outcomes = Counter(post_whole_then_read(ingestion, size, chunked, close) for _ in range(REPEATS))
    assert outcomes == {"413 error ['message', 'status']": REPEATS}


def test_the_413_says_what_the_limit_is(ingestion):
    host, port = address(ingestion)
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("POST", "/event", body=b" " * (2 * MIB), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["message"] == "Request body is larger than 65536 bytes"
    connection.close()


def test_a_body_far_beyond_the_discard_limit_is_cut_off_not_read_forever(ingestion):
    """An endless chunked body: the server stops reading after DISCARD_LIMIT_BYTES and closes."""
    host, port = address(ingestion)
    head = ["POST /event HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    sock = open_request(ingestion, [*head, "Transfer-Encoding: chunked", ""])
    chunk = f"{PIECE:x}\r\n".encode() + b" " * PIECE + b"\r\n"
    sent = 0
    started = time.monotonic()
    with sock:
        try:
            while time.monotonic() - started < BODY_READ_TIMEOUT + SLACK:
                sock.sendall(chunk)
                sent += PIECE
        except OSError:
            pass
    # Besides what was discarded, only what the kernels' socket buffers hold went out.
    assert sent < DISCARD_LIMIT_BYTES + 32 * MIB


@dataclass
class Answer:
    """What a raw socket client saw: the response head and body, and when the server closed."""

    head: str = ""
    body: bytes = b""
    closed_after: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return int(self.head.split()[1]) if self.head else 0


def read_answer(sock: socket.socket, started: float, timeout: float) -> Answer:
    """Read until the server closes the connection (or `timeout`): the response, if any."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        return Answer(body=data)
    except ConnectionResetError:
        pass
    answer = Answer(closed_after=time.monotonic() - started)
    if data:
        head, _, answer.body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        answer.head = lines[0]
        answer.headers = {name.lower(): value.strip() for name, value in (x.split(":", 1) for x in lines[1:])}
    return answer


def open_request(url: str, head_lines: list[str]) -> socket.socket:
    sock = socket.create_connection(address(url), timeout=10)
    sock.sendall("".join(f"{line}\r\n" for line in head_lines).encode())
    return sock


def event_head(url: str, length: int) -> list[str]:
    host, port = address(url)
    return [
        "POST /event HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        "",
    ]


def test_a_stalled_body_gets_408_and_a_closed_connection_within_the_bound(ingestion):
    started = time.monotonic()
    sock = open_request(ingestion, event_head(ingestion, 1000))
    sock.sendall(b'{"site_id": ')
    with sock:
        answer = read_answer(sock, started, BODY_READ_TIMEOUT + KEEPALIVE + SLACK)
    assert answer.closed_after is not None, "the connection was still open"
    assert BODY_READ_TIMEOUT - 0.5 <= answer.closed_after <= BODY_READ_TIMEOUT + SLACK
    assert answer.status == 408
    assert answer.headers["connection"] == "close"
    assert json.loads(answer.body) == {
        "status": "error",
        "message": f"Request body not received within {BODY_READ_TIMEOUT:g} seconds",
    }


def test_a_trickled_body_is_cut_off_at_the_bound_however_steady(ingestion):
    """A byte every half second never leaves the socket idle for long: the bound is on the
    whole body, not on each read."""
    started = time.monotonic()
    sock = open_request(ingestion, event_head(ingestion, 1000))
    with sock:
        try:
            while time.monotonic() - started < BODY_READ_TIMEOUT + KEEPALIVE + SLACK:
                sock.sendall(b" ")
                time.sleep(0.5)
        except OSError:  # the server answered and closed: further bytes are refused
            pass
        answer = read_answer(sock, started, SLACK)
    assert answer.status == 408
    assert time.monotonic() - started <= BODY_READ_TIMEOUT + SLACK + 1


def test_a_slow_request_head_is_closed_within_the_keepalive_bound(ingestion):
    """gunicorn's gevent worker bounds the request line and headers by its keepalive
    setting (a whole head, however slowly it trickles)."""
    started = time.monotonic()
    sock = open_request(ingestion, ["POST /event HTTP/1.1"])
    with sock:
        try:
            while time.monotonic() - started < KEEPALIVE + SLACK:
                sock.sendall(b"X-Slow: 1\r\n")
                time.sleep(0.5)
        except OSError:
            pass
        answer = read_answer(sock, started, SLACK)
    assert answer.closed_after is not None
    assert answer.closed_after <= KEEPALIVE + SLACK + 1


def test_other_clients_are_served_while_bodies_stall(ingestion):
    stalled = [open_request(ingestion, event_head(ingestion, 1000)) for _ in range(50)]
    for sock in stalled:
        sock.sendall(b"{")
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(lambda _: post_event(ingestion, make_event()), range(40)))
        assert [response.status_code for response in responses] == [200] * 40
        assert time.monotonic() - started < BODY_READ_TIMEOUT
    finally:
        for sock in stalled:
            sock.close()
