"""Gunicorn's own refusals are written in the contract's error body (app/web/server_errors.py)."""

import socket

import orjson
from gunicorn import util

from app.web import server_errors


def test_a_refusal_is_written_as_the_contract_error_body():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        server_errors.write_json_error(ours, 414, "URI Too Long", "Request Line is too large (4095 > 4094)")
        head, _, body = theirs.recv(65536).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 414 URI Too Long"
    assert "Content-Type: application/json" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert orjson.loads(body) == {
        "status": "error",
        "message": "URI Too Long: Request Line is too large (4095 > 4094)",
    }


def test_install_replaces_gunicorns_html_writer(monkeypatch):
    monkeypatch.setattr(util, "write_error", util.write_error)  # restored after the test
    server_errors.install()
    assert util.write_error is server_errors.write_json_error
