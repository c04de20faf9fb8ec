"""Review of issue #30 (review-30): a retried batch's message carries its events in `argsrepr`,
which the worker's JSON lines repeat. Fails on main as of 74d12d1.

The issue: "No event payloads" in any log line. app/queue/publish.py sets `argsrepr` to
`[N events]` for the first delivery; `Task.retry` (tasks/persist.py) builds the next message
from the request, and Celery drops `argsrepr` there (`Context._get_custom_headers`), so the
retry's message gets Celery's default, `saferepr(args)`: the events, up to 1 KiB. The worker
logs `argsrepr` in the `data` of its "Received task" line (celery.worker.strategy, kept at
LOG_LEVEL=debug, the level docs/monitoring.md tells an operator to use to follow an event)
and of a failed task's line (celery.app.trace, at every level); python-json-logger writes a
record's `extra` into the JSON object.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
from unittest import mock

import pytest
from celery.app import trace
from celery.exceptions import Retry

from app import logs
from app.extensions import celery_app
from tasks import persist
from tools.factories import make_message

SECRET_PATH = "/account/4111-1111-1111-1111"


def test_a_retried_batch_is_not_logged_with_its_events(monkeypatch):
    message = make_message(path=SECRET_PATH, user_id="alice@example.com")
    sent: list[dict] = []

    def capture(signature, *args, **kwargs):
        sent.append(dict(signature.options))

    monkeypatch.setattr("celery.canvas.Signature.apply_async", capture)
    persist.persist_events.push_request(
        id="batch-1",
        args=[[message]],
        kwargs={},
        retries=0,
        argsrepr="[1 events]",
        kwargsrepr="{}",
        headers={"request_ids": ["r-1"]},
        delivery_info={"exchange": "", "routing_key": "celery"},
        called_directly=False,
    )
    try:
        with pytest.raises(Retry):
            persist.persist_events.retry(exc=RuntimeError("away"), countdown=1, max_retries=None, kwargs={})
    finally:
        persist.persist_events.pop_request()
    (options,) = sent
    # What the retried message's headers hold, as the broker gets them.
    argsrepr = celery_app.amqp.as_task_v2(
        "batch-1", persist.persist_events.name, args=[[message]], argsrepr=options.get("argsrepr")
    ).headers["argsrepr"]

    # The worker's "Received task" line for that message, in JSON at LOG_LEVEL=debug.
    stream = io.StringIO()
    config = logs.dict_config("debug", "json")
    config["handlers"]["stderr"]["stream"] = stream
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    try:
        with mock.patch.dict(logging.root.manager.loggerDict):
            logging.config.dictConfig(config)
            context = {"id": "batch-1", "name": "persist", "args": argsrepr, "kwargs": "{}", "eta": None}
            received = logging.getLogger("celery.worker.strategy")
            received.info(trace.LOG_RECEIVED, context, extra={"data": context})
    finally:
        logging.root.handlers[:], logging.root.level = root_handlers, root_level
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert SECRET_PATH not in json.dumps(line), line
