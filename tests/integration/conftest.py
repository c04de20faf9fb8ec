"""Integration fixtures: real Redis and MongoDB servers, a Celery worker and both services
under gunicorn, each on a free loopback port, started once per test session.

With REDIS_URL / MONGO_URI set, those servers are used instead of local ones (each session
uses a database of its own).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from app.local_services import mongo_argv, redis_argv
from tests.integration.processes import (
    ManagedProcess,
    celery_argv,
    free_port,
    gunicorn_argv,
    http_ok,
    port_open,
    wait_until,
)

STARTUP_TIMEOUT = 60


@dataclass
class LocalServer:
    """A local server the tests may stop and start again (same port, same data)."""

    process: ManagedProcess
    port: int

    def start(self) -> None:
        self.process.start()
        wait_until(lambda: port_open(self.port), STARTUP_TIMEOUT, f"{self.process.name} on {self.port}")

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


def start_local_server(name: str, build_argv: Any, root: Path) -> LocalServer:
    port = free_port()
    data_dir = root / name
    data_dir.mkdir(parents=True, exist_ok=True)
    server = LocalServer(ManagedProcess(name, build_argv(port, data_dir), {}, root), port)
    server.start()
    return server


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
    return {"REDIS_URL": redis_url, "MONGO_URI": mongo_uri, "WORKER_CONCURRENCY": "2", "LOG_LEVEL": "info"}


@pytest.fixture(scope="session")
def db(mongo_uri: str) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    yield client.get_default_database()
    client.close()


def start_worker(name: str, env: dict[str, str], run_dir: Path, *extra: str) -> ManagedProcess:
    worker = ManagedProcess(
        name, celery_argv("worker", "--loglevel=info", "-n", f"{name}@%h", *extra), env, run_dir
    ).start()
    wait_until(lambda: " ready." in worker.log(), STARTUP_TIMEOUT, f"{name} to be ready")
    return worker


def start_service(
    app: str, env: dict[str, str], run_dir: Path, name: str | None = None
) -> tuple[ManagedProcess, str]:
    port = free_port()
    process = ManagedProcess(name or app, gunicorn_argv(app, port), env, run_dir).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: port_open(port), STARTUP_TIMEOUT, f"{app} on {port}")
    return process, url


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], run_dir: Path) -> Iterator[ManagedProcess]:
    process = start_worker("worker", service_env, run_dir)
    yield process
    process.stop()


def serve(app: str, env: dict[str, str], run_dir: Path) -> Iterator[str]:
    """Run one service until the session ends; yield its URL once it reports healthy."""
    process, url = start_service(app, env, run_dir)
    wait_until(lambda: http_ok(f"{url}/health"), STARTUP_TIMEOUT, f"{app} health")
    yield url
    process.stop()


@pytest.fixture(scope="session")
def ingestion_url(service_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    yield from serve("ingestion", service_env, run_dir)


@pytest.fixture(scope="session")
def reporting_url(service_env: dict[str, str], run_dir: Path) -> Iterator[str]:
    yield from serve("reporting", service_env, run_dir)


@pytest.fixture(scope="session")
def pipeline(worker: ManagedProcess, ingestion_url: str, reporting_url: str) -> dict[str, str]:
    """The whole pipeline running: the URLs of ingestion and reporting."""
    return {"ingestion": ingestion_url, "reporting": reporting_url}
