"""The README's walkthrough ("First event and its stats") run from the README's own text: its
shell blocks pasted one after another into one bash session, as a reader does with `make run`
going in another terminal, and the answers checked against the README's.

Only the environment differs from a reader's terminal:
- `make run` is the test's servers: the session's Redis, MongoDB and worker (REDIS_URL and
  MONGO_URI name them, so `make site` registers the site there), and ingestion and reporting
  as `make run` starts them (their default settings, keys mode), on free ports;
- curl reads a `.curlrc` of the test's (CURL_HOME) that connects the README's ports to those;
- `make` on PATH is the real one told never to install (`-o .venv/.installed`): the test runs
  in the virtualenv that runs it, and nothing may install into it behind a test's back.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.services import start_healthy_services
from tests.integration.terminal import Terminal
from tests.markdown import code_blocks, section
from tools.processes import ROOT, ManagedProcess, stop_all

WALKTHROUGH = section((ROOT / "README.md").read_text(), "First event and its stats")
# Where `make run` serves, and so where the README's commands send (the Procfile's defaults).
README_PORTS = {"ingestion": 3000, "reporting": 4000}
PARENT_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
# The rollups that /stats reads trail the stored events by about half a second when idle,
# longer while the session's worker still works through earlier tests' events.
ROLLUPS_TIMEOUT = 30


@pytest.fixture
def readers_services(
    redis_url: str, mongo_uri: str, run_dir: Path, worker: ManagedProcess
) -> Iterator[dict[str, str]]:
    """Ingestion and reporting with `make run`'s settings, beside the session's worker: each
    app's URL."""
    env = {"REDIS_URL": redis_url, "MONGO_URI": mongo_uri, "AUTH_MODE": "keys"}
    started = start_healthy_services({app: f"{app}-readme" for app in README_PORTS}, env, run_dir)
    yield {app: url for app, (_, url) in started.items()}
    stop_all(process for process, _ in started.values())


def readers_environment(
    services: dict[str, str], redis_url: str, mongo_uri: str, home: Path
) -> dict[str, str]:
    """A reader's environment, but for the servers it reaches and a `make` that never installs."""
    real_make = shutil.which("make")
    assert real_make, "the README's commands need make"
    (home / "bin").mkdir()
    make = home / "bin" / "make"
    make.write_text(f'#!/bin/sh\nexec {real_make} -o .venv/.installed "$@"\n')
    make.chmod(0o755)
    (home / ".curlrc").write_text(
        "".join(
            f"connect-to = {host}:{README_PORTS[app]}:{url.removeprefix('http://')}\n"
            for app, url in services.items()
            for host in ("localhost", "127.0.0.1")
        )
    )
    # A reader's terminal is no make's child, whatever ran the tests (`make test`).
    inherited = {name: value for name, value in os.environ.items() if name not in PARENT_MAKE}
    return {
        **inherited,
        "PATH": f"{home / 'bin'}:{os.environ['PATH']}",
        "CURL_HOME": str(home),
        "REDIS_URL": redis_url,
        "MONGO_URI": mongo_uri,
    }


def answer(terminal: Terminal, commands: str) -> dict[str, Any]:
    """What `commands` printed, as the JSON object the README shows them print."""
    printed = terminal.run(commands)
    try:
        body: dict[str, Any] = json.loads(printed)
    except json.JSONDecodeError:
        pytest.fail(f"{commands}\nprinted no JSON: {printed!r}\nstderr: {terminal.errors()}")
    return body


def test_the_readme_walkthrough_runs_as_written_and_counts_its_events_exactly(
    readers_services: dict[str, str], redis_url: str, mongo_uri: str, tmp_path: Path
) -> None:
    blocks = code_blocks(WALKTHROUGH)
    *commands, question = [block.text for block in blocks if block.is_shell]
    (expected,) = [json.loads(block.text) for block in blocks if block.language == "json"]
    env = readers_environment(readers_services, redis_url, mongo_uri, tmp_path)
    terminal = Terminal(env, ROOT, tmp_path / "terminal.log")
    try:
        first_day = datetime.now(UTC).date()
        printed = "".join(terminal.run(block) for block in commands)
        days = {first_day.isoformat(), datetime.now(UTC).date().isoformat()}
        answers = [json.loads(line) for line in printed.splitlines() if line.strip()]
        assert answers == [{"status": "accepted"}] * expected["total_views"], terminal.errors()

        # Asked again while the rollups have not caught up, as a reader would.
        deadline = time.monotonic() + ROLLUPS_TIMEOUT
        stats = answer(terminal, question)
        while stats.get("total_views") != expected["total_views"] and time.monotonic() < deadline:
            time.sleep(0.2)
            stats = answer(terminal, question)
    finally:
        terminal.close()
    assert stats == {**expected, "date": stats.get("date")}
    assert stats["date"] in days
