"""Review of issue #30 (review-30): "No event payloads and no client addresses" in the JSON logs
(docs/monitoring.md: "JSON lines hold no event payload and no client address"). Fails on main
as of 74d12d1: gunicorn logs each request it refuses itself (a header too large, a malformed
request line) at WARNING, "Invalid request from ip=<the peer's address>" (gunicorn
workers/base.py, `handle_error`), and app/logs.py lets gunicorn.error through at every level."""

import json
import socket
from urllib.parse import urlsplit

from tests.integration.services import start_healthy


def test_a_request_gunicorn_refuses_leaves_no_client_address_in_the_json_log(service_env, run_dir):
    process, url = start_healthy("ingestion", {**service_env, "LOG_FORMAT": "json"}, run_dir, "json-refusal")
    try:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=5) as client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 431")
    finally:
        process.stop()
    lines = [json.loads(line) for line in process.log().splitlines() if line.startswith("{")]
    assert [
        line["message"]
        for line in lines
        if "127.0.0.1" in line["message"] and "Listening" not in line["message"]
    ] == []
