"""Celery entry point for workers and Flower: `celery -A tasks.worker worker`."""

from __future__ import annotations

from typing import Any

from celery.signals import import_modules, setup_logging, worker_init

from app import create_app, logs, migrations
from app.extensions import celery_app, mongo, redis_store
from app.store import events, user_numbers
from tasks.maintenance import LedgerCheck, RetentionSweeper, RollupCompactor

flask_app = create_app("worker")
celery_app.conf.include = ["tasks.persist"]  # the worker registers the tasks it runs
celery_app.steps["consumer"].add(LedgerCheck)
celery_app.steps["worker"].add(RollupCompactor)
celery_app.steps["worker"].add(RetentionSweeper)


@worker_init.connect
def create_indexes(**_: Any) -> None:
    """Create indexes and run the migrations a compactor needs once per worker start, then
    drop the connection before forking."""
    events.ensure_indexes(mongo.db)
    user_numbers.ensure_indexes(mongo.db)
    migrations.adopt_new_store(mongo.db)
    migrations.migrate(mongo.db, redis_store.client, before_compacting=True)
    mongo.close()
    redis_store.close()


@setup_logging.connect
def configure_logging(**_: Any) -> None:
    """The project's logging (app/logs.py) instead of Celery's, at LOG_LEVEL."""
    logs.configure(flask_app.extensions["settings"].log_level)


# Flower (`celery -A tasks.worker flower`) sends no setup_logging: it sets up tornado's
# logging, then imports the app's modules as it starts, where the project's replaces it.
import_modules.connect(configure_logging)
