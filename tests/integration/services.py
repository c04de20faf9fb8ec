"""The services a test runs: the settings the session's processes share, and one service
(or Flower) started on a free loopback port and handed over once it answers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from tools.factories import FIXED_DATES_ENV
from tools.processes import (
    UNLIMITED_RATES,
    ManagedProcess,
    free_port,
    http_ok,
    port_open,
    start_services,
)

# Small enough for test_caps.py to exceed with a few hundred events, and above what any
# other test sends to one site.
ROLLUP_CAPS = {"ROLLUP_MAX_PATHS": "100", "ROLLUP_MAX_EVENT_TYPES": "4"}

# What every process of the session runs with, beside the addresses of its servers.
SESSION_SETTINGS = {
    **UNLIMITED_RATES,
    "WORKER_CONCURRENCY": "2",
    "LOG_LEVEL": "info",
    **ROLLUP_CAPS,
    **FIXED_DATES_ENV,  # tests post fixed 2025 dates
    "SECRET_KEY": "integration-tests",  # signs the dashboard's sessions
}


def start_healthy_services(
    names: Mapping[str, str], env: dict[str, str], run_dir: Path
) -> dict[str, tuple[ManagedProcess, str]]:
    """Start services at once (app -> process name); return each one's process and URL once
    every /health answers."""
    started = start_services(names, env, run_dir)
    for app, (process, url) in started.items():
        process.wait_for(functools.partial(http_ok, f"{url}/health"), f"{names[app]} health")
    return started


def start_healthy(
    app: str, env: dict[str, str], run_dir: Path, name: str | None = None
) -> tuple[ManagedProcess, str]:
    """Start one service; return it and its URL once its /health answers."""
    return start_healthy_services({app: name or app}, env, run_dir)[app]


def serve(
    app: str,
    env: dict[str, str],
    run_dir: Path,
    processes: dict[str, ManagedProcess] | None = None,
    name: str | None = None,
) -> Iterator[str]:
    """Run one service until the fixture ends; yield its URL once it reports healthy."""
    process, url = start_healthy(app, env, run_dir, name)
    if processes is not None:
        processes[app] = process
    yield url
    process.stop()


def start_flower(
    name: str, env: dict[str, str], run_dir: Path, **settings: str
) -> tuple[ManagedProcess, int]:
    """Flower's launcher with FLOWER_* `settings` on a free loopback port; (process, port)."""
    port = free_port()
    env = {**env, "FLOWER_HOST": "127.0.0.1", "FLOWER_PORT": str(port), **settings}
    process = ManagedProcess(name, [sys.executable, "-m", "tasks.flower"], env, run_dir).start()
    return process, port


def serve_flower(name: str, env: dict[str, str], run_dir: Path, **settings: str) -> Iterator[str]:
    """Run Flower until the fixture ends; yield its URL once it listens."""
    process, port = start_flower(name, env, run_dir, **settings)
    process.wait_for(lambda: port_open(port), name)
    yield f"http://127.0.0.1:{port}"
    process.stop()
