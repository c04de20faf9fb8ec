"""The application factory: one Flask app per service (ingestion, reporting, worker)."""

from __future__ import annotations

from typing import Literal

from flask import Flask

from app.commands import (
    create_indexes_command,
    rebuild_rollups_command,
    replay_dead_command,
    replay_set_aside_command,
)
from app.errors import register_errorhandlers
from app.extensions import celery_init_app, mongo, redis_store
from app.ingestion import bp as ingestion_bp
from app.settings import Settings

Service = Literal["ingestion", "reporting", "worker"]
# The services that publish or consume Celery tasks.
CELERY_SERVICES = ("ingestion", "worker")


def create_app(service: Service, settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(f"analytics-{service}")
    app.extensions["settings"] = settings
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_event_bytes
    register_extensions(app, settings, service)
    register_blueprints(app, service)
    register_errorhandlers(app)
    register_commands(app, service)
    return app


def register_extensions(app: Flask, settings: Settings, service: Service) -> None:
    redis_store.init_app(app, settings)
    mongo.init_app(app, settings)
    if service in CELERY_SERVICES:
        celery_init_app(app, settings)


def register_blueprints(app: Flask, service: Service) -> None:
    if service == "ingestion":
        app.register_blueprint(ingestion_bp)
    elif service == "reporting":
        from reporting import bp as reporting_bp  # the one import of reporting/ from app/

        app.register_blueprint(reporting_bp)


def register_commands(app: Flask, service: Service) -> None:
    app.cli.add_command(create_indexes_command)
    app.cli.add_command(rebuild_rollups_command)
    app.cli.add_command(replay_set_aside_command)
    if service in CELERY_SERVICES:
        app.cli.add_command(replay_dead_command)
