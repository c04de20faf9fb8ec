"""The Celery application, bound to a Flask app so tasks run inside its app context."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from app.config import Settings
from celeryconfig import celery_config
from tasks import redis_transport


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    redis_transport.register()  # before Celery resolves `redis://` to a transport

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask, include=["tasks.persist"])
    celery_app.conf.update(celery_config(settings))
    celery_app.flask_app = app
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
