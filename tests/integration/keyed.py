"""The services in AUTH_MODE=keys, with sites registered and keys made by the real `flask`
CLI: shared by the access tests and the browser test (the `keyed` fixture in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.services import start_healthy_services
from tools.processes import PYTHON_BIN, stop_all

# Short, so that the tests of a site added and a key revoked while the services run need
# not wait long.
REFRESH_SECONDS = 0.5
KEY_CACHE_SECONDS = 1


def flask(env: dict[str, str], *args: str) -> str:
    """Run `flask --app wsgi:ingestion ARGS` as an operator would; return its output."""
    done = subprocess.run(
        [str(PYTHON_BIN / "flask"), "--app", "wsgi:ingestion", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@dataclass
class Keyed:
    """The services in keys mode, with two registered sites and their read keys."""

    env: dict[str, str]
    ingestion: str
    reporting: str
    shop: str  # site ids: unique per run, the session's database is shared; domains
    blog: str  # allowed.test and localhost for the shop, blog.test for the blog
    shop_key: str
    blog_key: str
    operator_key: str


@contextmanager
def keyed_services(service_env: dict[str, str], run_dir: Path) -> Iterator[Keyed]:
    """Register the two sites, start ingestion and reporting in keys mode, and stop them
    when the block ends."""
    env = {
        **service_env,
        "AUTH_MODE": "keys",
        "REGISTRY_REFRESH_SECONDS": str(REFRESH_SECONDS),
        "KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
    }
    suffix = uuid.uuid4().hex[:8]
    shop, blog = f"shop-{suffix}", f"blog-{suffix}"
    # Each command is a process of its own that mostly starts Python: those that need not
    # wait for one another run at once.
    with ThreadPoolExecutor() as pool:
        registered = [
            pool.submit(flask, env, "site", "add", shop, "--domain", "allowed.test", "--domain", "localhost"),
            pool.submit(flask, env, "site", "add", blog, "--domain", "blog.test"),
        ]
        operator = pool.submit(flask, env, "key", "create", "--operator")
        for done in registered:
            done.result()
        keys = [pool.submit(flask, env, "key", "create", site) for site in (shop, blog)]
        shop_key, blog_key, operator_key = (done.result().splitlines()[-1] for done in [*keys, operator])
    # Registered before the services start, so every process's first snapshot holds them.
    services = start_healthy_services(
        {"ingestion": "ingestion-keys", "reporting": "reporting-keys"}, env, run_dir
    )
    (_, ingestion_url), (_, reporting_url) = services["ingestion"], services["reporting"]
    try:
        yield Keyed(env, ingestion_url, reporting_url, shop, blog, shop_key, blog_key, operator_key)
    finally:
        stop_all(process for process, _ in services.values())
