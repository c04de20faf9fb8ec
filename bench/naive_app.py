"""The seed design, for comparison: one Celery `apply_async` per request, no validation."""

from __future__ import annotations

from typing import Any

from celery import Celery
from flask import Flask, request

from app.settings import Settings
from celeryconfig import celery_config

celery = Celery("bench-naive")
celery.conf.update(celery_config(Settings.from_env()))
app = Flask("bench-naive")


@celery.task(name="bench.naive_event")
def naive_event(event: dict[str, Any]) -> None:
    """Never run: the benchmark starts no worker, the queue just grows."""


@app.post("/event")
def post_event() -> dict[str, str]:
    naive_event.apply_async(args=[request.get_json()], retry=True)
    return {"status": "accepted"}
