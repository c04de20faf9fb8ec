"""LOG_FORMAT=json: one JSON object a line with the request id, and no client address."""

import io
import json
import logging
import logging.config

import pytest

from app import logs
from app.monitoring import request_ids


@pytest.fixture
def json_lines(monkeypatch):
    """Apply the JSON config with its handlers writing to a buffer; yield the lines read."""
    stream = io.StringIO()
    config = logs.dict_config("info", "json")
    for handler in config["handlers"].values():
        handler["stream"] = stream
    saved = logging.root.handlers[:], logging.root.level
    logging.config.dictConfig(config)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logging.root.handlers[:], _ = saved
    logging.root.setLevel(saved[1])
    for name in ("gunicorn.error", "gunicorn.access", *logs.ADDRESS_LOGGERS):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).filters.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_a_json_line_carries_the_current_request_ids(json_lines):
    token = request_ids.enter("req-1", "req-2")
    logging.getLogger("app.test").warning("stored %d events", 3)
    request_ids.leave(token)
    logging.getLogger("app.test").warning("no request")
    first, second = json_lines()
    assert first["message"] == "stored 3 events"
    assert (first["level"], first["logger"], first["request_id"]) == ("WARNING", "app.test", "req-1,req-2")
    assert {"time", "process"} <= first.keys()
    assert second["request_id"] == ""


def test_the_json_access_line_names_the_request_id_and_not_the_client(json_lines):
    atoms = {"r": "POST /event HTTP/1.1", "s": "200", "B": "21", "M": "3", "{analytics.site}e": "shop"}
    atoms |= {"{analytics.logged_client}e": "203.0.113.0", logs.ACCESS_REQUEST_ID: "req-9"}
    logging.getLogger("gunicorn.access").info(logs.access_format("json"), atoms)
    logging.getLogger("tornado.access").warning("404 GET /x (203.0.113.9) 1.0ms")
    (line,) = json_lines()
    assert line["request_id"] == "req-9"
    assert line["message"] == '"POST /event HTTP/1.1" 200 21 3ms site=shop'
    assert "203.0.113.9" not in json.dumps(line)


def test_text_stays_the_default_and_keeps_the_client():
    assert logs.dict_config("info")["formatters"]["plain"] == {"format": logs.FORMAT}
    assert "analytics.logged_client" in logs.access_format("text")


@pytest.mark.parametrize(
    ("peer", "network"), [("203.0.113.7", "203.0.113.0"), ("2001:db8:1:2:3::5", "2001:db8:1::")]
)
def test_a_request_gunicorn_refuses_is_logged_with_the_peers_network_only(json_lines, peer, network):
    logging.getLogger("gunicorn.error").warning(f"Invalid request from ip={peer}: Invalid HTTP Version")
    (line,) = json_lines()
    assert line["message"] == f"Invalid request from ip={network}: Invalid HTTP Version"
