"""Gunicorn's own refusals in the contract's error body.

Gunicorn answers some requests before the application sees them: a request line or header
beyond its limits (414, 431), a malformed request (400). It writes those answers as HTML;
`install` makes it write `{"status": "error", "message": ...}` instead, as every other
error of both services is written.
"""

from __future__ import annotations

import socket

import orjson
from gunicorn import util


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """What gunicorn's `util.write_error` writes, with the contract's JSON body."""
    message = f"{reason}: {mesg}" if mesg else reason
    body = orjson.dumps({"status": "error", "message": message})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    """Have gunicorn write its refusals with `write_json_error` (its workers call
    `util.write_error` by module attribute, when they answer)."""
    util.write_error = write_json_error
