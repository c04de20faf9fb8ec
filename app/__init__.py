"""The application factory: one Flask app per service (ingestion, reporting, worker)."""

from __future__ import annotations

import logging
from typing import Literal

from flask import Flask

from app.access.commands import key_group, site_group
from app.access.registry import SiteRegistry
from app.commands import (
    create_indexes_command,
    migrate_store_command,
    rebuild_rollups_command,
    replay_dead_command,
    replay_set_aside_command,
)
from app.extensions import celery_init_app, mongo, probe_redis, redis_store
from app.ingestion import bp as ingestion_bp
from app.ingestion import segment_bp, umami_bp
from app.monitoring import requests
from app.settings import Settings
from app.store import sites
from app.transfer import views as transfer_views
from app.transfer.commands import events_group, seed_demo_command
from app.web import client_address
from app.web.errors import register_errorhandlers
from app.web.ratelimit import init_reporting_limits

Service = Literal["ingestion", "reporting", "worker"]
# The services that publish or consume Celery tasks.
CELERY_SERVICES = ("ingestion", "worker")
# The services clients reach over HTTP, whose access AUTH_MODE sets.
HTTP_SERVICES = ("ingestion", "reporting")

OPEN_MODE_WARNINGS = {
    "ingestion": "ingestion accepts events of any site id, from any web page",
    "reporting": "reporting shows every site's statistics to anyone, without a key",
}

logger = logging.getLogger(__name__)


def create_app(service: Service, settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(f"analytics-{service}")
    app.extensions["settings"] = settings
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_event_bytes
    register_extensions(app, settings, service)
    register_access(app, settings, service)
    register_blueprints(app, service)
    register_errorhandlers(app)
    register_commands(app, service)
    return app


def register_extensions(app: Flask, settings: Settings, service: Service) -> None:
    redis_store.init_app(app, settings)
    probe_redis.init_app(app, settings)
    mongo.init_app(app, settings)
    if service in CELERY_SERVICES:
        celery_init_app(app, settings, consumes=service == "worker")
    if service in HTTP_SERVICES:
        client_address.init_app(app, settings, anonymize_log=service == "ingestion")
        requests.init_app(app, service)
    if service == "reporting":  # ingestion's limits are counted by its views
        init_reporting_limits(app, settings)


def register_access(app: Flask, settings: Settings, service: Service) -> None:
    """The site registry ingestion checks events against, or a loud warning that anyone may
    send and read (`AUTH_MODE=open`)."""
    if service not in HTTP_SERVICES:
        return
    if settings.auth_mode == "open":
        logger.warning("AUTH_MODE=open: %s. Use it only on a trusted network.", OPEN_MODE_WARNINGS[service])
    elif service == "ingestion":
        app.extensions["site_registry"] = SiteRegistry(
            lambda: sites.registered_sites(mongo.db), settings.registry_refresh_seconds
        )


def register_blueprints(app: Flask, service: Service) -> None:
    if service == "ingestion":
        app.register_blueprint(ingestion_bp)
        app.register_blueprint(transfer_views.bp)
        app.register_blueprint(umami_bp)
        app.register_blueprint(segment_bp)
    elif service == "reporting":
        from reporting import bp as reporting_bp  # the one import of reporting/ from app/
        from reporting import dashboard_bp

        app.register_blueprint(reporting_bp)
        app.register_blueprint(dashboard_bp)


def register_commands(app: Flask, service: Service) -> None:
    app.cli.add_command(create_indexes_command)
    app.cli.add_command(migrate_store_command)
    app.cli.add_command(rebuild_rollups_command)
    app.cli.add_command(replay_set_aside_command)
    app.cli.add_command(site_group)
    app.cli.add_command(key_group)
    if service in CELERY_SERVICES:
        app.cli.add_command(replay_dead_command)
        app.cli.add_command(events_group)
        app.cli.add_command(seed_demo_command)
