"""Celery entry point for workers and Flower: `celery -A tasks.worker worker`."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_init

from app import create_app, storage
from app.extensions import mongo
from tasks.maintenance import LedgerCheck, RollupCompactor

flask_app = create_app("worker")
celery_app = flask_app.extensions["celery"]
celery_app.steps["consumer"].add(LedgerCheck)
celery_app.steps["worker"].add(RollupCompactor)


@worker_init.connect
def create_indexes(**_: Any) -> None:
    """Create indexes once per worker start, then drop the connection before forking."""
    storage.ensure_indexes(mongo.db)
    mongo.close()
