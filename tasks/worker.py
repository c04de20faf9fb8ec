"""Celery entry point for workers and Flower: `celery -A tasks.worker worker`."""

from __future__ import annotations

from typing import Any

from celery.signals import (
    celeryd_init,
    import_modules,
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
)

from app import create_app, logs, migrations
from app.extensions import celery_app, mongo, redis_store
from app.monitoring import request_ids
from app.store import events, user_numbers, visits
from tasks import flower
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
    visits.ensure_indexes(mongo.db)
    migrations.adopt_new_store(mongo.db)
    migrations.migrate(mongo.db, redis_store.client, before_compacting=True)
    mongo.close()
    redis_store.close()


@task_prerun.connect
def enter_request_ids(task: Any, **_: Any) -> None:
    """The task's lines name the requests whose events its message carries."""
    task.request.request_ids_token = request_ids.enter(
        *(getattr(task.request, request_ids.MESSAGE_HEADER, None) or ())
    )


@task_postrun.connect
def leave_request_ids(task: Any, **_: Any) -> None:
    token = getattr(task.request, "request_ids_token", None)
    if token is not None:
        request_ids.leave(token)


@setup_logging.connect
def configure_logging(**_: Any) -> None:
    """The project's logging (app/logs.py) instead of Celery's, at LOG_LEVEL."""
    settings = flask_app.extensions["settings"]
    logs.configure(settings.log_level, settings.log_format)


@celeryd_init.connect
def leave_the_banner_out_of_json(instance: Any, **_: Any) -> None:
    """Celery prints its start-up banner rather than logging it: with LOG_FORMAT=json, whose
    lines are each one JSON object, the worker starts quiet (its "ready." is still logged)."""
    if flask_app.extensions["settings"].log_format == "json":
        instance.quiet = True


# Flower (`celery -A tasks.worker flower`) sends no setup_logging: it sets up tornado's
# logging, then imports the app's modules as it starts, where the project's replaces it.
import_modules.connect(configure_logging)
import_modules.connect(flower.guard_metrics)
