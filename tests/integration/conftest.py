"""Integration fixtures: real Redis and MongoDB servers, a Celery worker and both services
under gunicorn, each on a free loopback port, started once per test session.

With REDIS_URL / MONGO_URI set, those servers are used instead of local ones (each session
uses a database of its own).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from tests.integration.keyed import Keyed, keyed_services
from tests.integration.services import SESSION_SETTINGS, serve
from tools.local_services import mongo_argv, redis_argv
from tools.processes import ManagedProcess, start_local_server, start_worker


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integration")


@pytest.fixture(scope="session")
def redis_url(run_dir: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = start_local_server("redis", redis_argv, run_dir)
    yield f"redis://127.0.0.1:{server.port}/0"
    server.stop()


@pytest.fixture(scope="session")
def mongo_uri(run_dir: Path) -> Iterator[str]:
    database = f"analytics_test_{uuid.uuid4().hex[:8]}"
    if os.environ.get("MONGO_URI"):
        client: MongoClient[dict[str, Any]] = MongoClient(os.environ["MONGO_URI"])
        yield f"{os.environ['MONGO_URI'].split('?')[0].rstrip('/').rsplit('/', 1)[0]}/{database}"
        client.drop_database(database)
        return
    server = start_local_server("mongo", mongo_argv, run_dir)
    yield f"mongodb://127.0.0.1:{server.port}/{database}"
    server.stop()


@pytest.fixture(scope="session")
def service_env(redis_url: str, mongo_uri: str) -> dict[str, str]:
    """The environment every service process of the session gets."""
    return {**SESSION_SETTINGS, "REDIS_URL": redis_url, "MONGO_URI": mongo_uri}


@pytest.fixture(scope="session")
def db(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    yield client.get_default_database()
    client.close()


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], run_dir: Path) -> Iterator[ManagedProcess]:
    process = start_worker("worker", service_env, run_dir)
    yield process
    process.stop()


@pytest.fixture(scope="session")
def service_processes() -> dict[str, ManagedProcess]:
    """The running services' gunicorn masters by name, for tests that watch their memory."""
    return {}


@pytest.fixture(scope="session")
def ingestion_url(
    service_env: dict[str, str], run_dir: Path, service_processes: dict[str, ManagedProcess]
) -> Iterator[str]:
    yield from serve("ingestion", service_env, run_dir, service_processes)


@pytest.fixture(scope="session")
def reporting_url(
    service_env: dict[str, str], run_dir: Path, service_processes: dict[str, ManagedProcess]
) -> Iterator[str]:
    yield from serve("reporting", service_env, run_dir, service_processes)


@pytest.fixture(scope="session")
def pipeline(worker: ManagedProcess, ingestion_url: str, reporting_url: str) -> dict[str, str]:
    """The whole pipeline running: the URLs of ingestion and reporting."""
    return {"ingestion": ingestion_url, "reporting": reporting_url}


FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> list[str]:
    """Lines a test adds to the end of the run's output: what it measured (fuzz cases, soak
    figures), shown even when it passes."""
    return request.config.stash.setdefault(FIGURES, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def keyed(service_env: dict[str, str], run_dir: Path, worker: ManagedProcess) -> Iterator[Keyed]:
    """Ingestion and reporting in AUTH_MODE=keys with two registered sites (see keyed.py);
    the worker stores their events. One pair for the session: the access tests and the
    browser's visits each use sites, users or keys of their own."""
    with keyed_services(service_env, run_dir) as keyed:
        yield keyed
