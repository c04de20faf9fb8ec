"""Start Flower safely: `python -m tasks.flower` (what `make flower` and docker compose run).

Flower 2.2 reads an empty `FLOWER_BASIC_AUTH` as one empty credential, which an
`Authorization: Basic .` header matches; and its HTTP API can shut workers down. So the
launcher passes credentials only when there are some, and refuses to let a Flower without
them listen beyond loopback, or open its API to anyone: without credentials,
`FLOWER_UNAUTHENTICATED_API` also answers every origin (`Access-Control-Allow-Origin: *`),
so any web page a local user opens could drive the API, loopback or not.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from typing import Any

import tornado.web
from flower.utils import strtobool

from app.settings import Settings

LOOPBACK_NAMES = ("localhost",)
GUARDED = "analytics_guarded"


class UnsafeFlowerError(Exception):
    """Flower would listen where anyone could drive it."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def command(settings: Settings, environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """Flower's argv and environment; raises UnsafeFlowerError with what to change."""
    credentials = settings.flower_basic_auth
    if credentials and not all(user and password for user, _, password in _pairs(credentials)):
        raise UnsafeFlowerError(
            "FLOWER_BASIC_AUTH must be user:password (comma-separated), each part non-empty"
        )
    if not credentials and not is_loopback(settings.flower_host):
        raise UnsafeFlowerError(
            f"Flower would listen on {settings.flower_host} without a login: set "
            "FLOWER_BASIC_AUTH=user:password, or FLOWER_HOST=127.0.0.1"
        )
    if not credentials and opens_the_api(settings.flower_unauthenticated_api):
        raise UnsafeFlowerError(
            "FLOWER_UNAUTHENTICATED_API would open Flower's API to every web page: set "
            "FLOWER_BASIC_AUTH=user:password, or leave it unset"
        )
    argv = [
        sys.executable, "-m", "celery", "-A", "tasks.worker", "flower",
        f"--address={settings.flower_host}",
        f"--port={settings.flower_port}",
    ]  # fmt: skip
    # Flower reads FLOWER_* variables itself, an empty one as a value: those are dropped. The
    # credentials stay in the environment, out of the argv that `ps` shows every local user.
    env = {name: value for name, value in environ.items() if not (name.startswith("FLOWER_") and not value)}
    env.pop("FLOWER_BASIC_AUTH", None)
    if credentials:
        env["FLOWER_BASIC_AUTH"] = credentials
    return argv, env


def opens_the_api(value: str) -> bool:
    """Whether Flower reads `value` as turning its unauthenticated API on; a value it cannot
    read counts as on, to be safe."""
    try:
        return bool(strtobool(value or "false"))
    except ValueError:
        return True


def _pairs(credentials: str) -> list[tuple[str, str, str]]:
    return [credential.partition(":") for credential in credentials.split(",")]


def guard_metrics(**_: Any) -> None:
    """Put Flower's `/metrics` behind its login, as its other pages are: Flower 2.2 leaves that
    handler open. Connected to Celery's `import_modules`, which Flower's process sends as it
    starts (tasks/worker.py); a process that has not loaded Flower's handlers is left alone."""
    monitor = sys.modules.get("flower.views.monitor")
    if monitor is None or getattr(monitor.Metrics.get, GUARDED, False):
        return
    guarded = tornado.web.authenticated(monitor.Metrics.get)
    setattr(guarded, GUARDED, True)
    monitor.Metrics.get = guarded


def main() -> None:
    try:
        argv, env = command(Settings.from_env(), os.environ)
    except UnsafeFlowerError as error:
        sys.exit(f"flower: not started: {error}")
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main()
