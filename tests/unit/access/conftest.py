"""Apps with AUTH_MODE=keys on mongomock, and the CLI that registers sites and makes keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pymongo.database import Database

from app import create_app
from app.settings import Settings

Cli = Callable[..., str]


@pytest.fixture
def keys_settings(settings: Settings) -> Settings:
    return replace(settings, auth_mode="keys")


@pytest.fixture
def keyed_ingestion_app(
    keys_settings: Settings,
    db: Database[Any],
    counter_store: fakeredis.FakeRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Flask]:
    app = create_app("ingestion", keys_settings)
    monkeypatch.setitem(app.extensions["celery"].conf, "task_always_eager", True)
    yield app
    app.extensions["site_registry"].stop()


@pytest.fixture
def keyed_ingestion(keyed_ingestion_app: Flask) -> FlaskClient:
    return keyed_ingestion_app.test_client()


@pytest.fixture
def keyed_reporting_app(
    keys_settings: Settings, db: Database[Any], counter_store: fakeredis.FakeRedis
) -> Flask:
    return create_app("reporting", keys_settings)


@pytest.fixture
def keyed_reporting(keyed_reporting_app: Flask) -> FlaskClient:
    return keyed_reporting_app.test_client()


@pytest.fixture
def cli(keyed_reporting_app: Flask) -> Cli:
    """Run a `flask` command; return its output, failing the test if the command fails."""
    runner = keyed_reporting_app.test_cli_runner()

    def run(*args: str, exit_code: int = 0) -> str:
        result = runner.invoke(args=list(args))
        assert result.exit_code == exit_code, result.output
        return result.output

    return run


@pytest.fixture
def site_key(cli: Cli) -> Callable[[str], str]:
    """Register a site (domain `<site>.test`) and return a new read key of it."""

    def make(site_id: str) -> str:
        cli("site", "add", site_id, "--domain", f"{site_id}.test")
        return cli("key", "create", site_id).splitlines()[-1]

    return make
