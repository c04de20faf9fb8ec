"""The embedded local servers used when REDIS_URL / MONGO_URI are unset: Redis and a MongoDB.

`python -m app.local_services redis|mongo` runs one in the foreground (as `make services`
and `make run` do); the integration tests call `redis_argv` / `mongo_argv` directly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path

from app.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FERRETDB = PROJECT_ROOT / ".local" / "bin" / "ferretdb"
DEFAULT_DATA_DIR = PROJECT_ROOT / "var"
DEFAULT_PORTS = {"redis": 6379, "mongo": 27017}


def redis_argv(port: int, data_dir: Path, maxmemory: str | None = None) -> list[str]:
    """redis-server on loopback with the append-only file fsynced before every reply, and a
    memory bound (default: REDIS_MAXMEMORY)."""
    return [
        "redis-server",
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir),
        "--appendonly", "yes",
        # "Accepted means kept": an enqueue is on disk before Redis confirms it.
        "--appendfsync", "always",
        "--save", "",
        # Full, Redis refuses writes (ingestion answers 503) instead of evicting queued events.
        "--maxmemory", maxmemory or Settings.from_env().redis_maxmemory,
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
    ]  # fmt: skip


def mongo_argv(port: int, data_dir: Path) -> list[str]:
    """mongod when installed, else FerretDB on SQLite (built by `make` into .local/bin)."""
    mongod = shutil.which("mongod")
    if mongod:
        return [mongod, "--bind_ip", "127.0.0.1", "--port", str(port), "--dbpath", str(data_dir)]
    return [str(FERRETDB), "-listen-addr", f"127.0.0.1:{port}", "-sqlite-url", f"file:{data_dir}/"]


ARGV_BUILDERS = {"redis": redis_argv, "mongo": mongo_argv}
# What a server already listening is likely to be, and the setting that uses it instead.
PACKAGED = {
    "redis": ("a packaged redis-server", "REDIS_URL=redis://127.0.0.1:{port}/0"),
    "mongo": ("a packaged mongod", "MONGO_URI=mongodb://127.0.0.1:{port}/analytics"),
}


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def refuse_taken_port(server: str, port: int) -> None:
    """Say plainly what to do when the port is taken, rather than let the server fail among its
    start-up lines (and honcho stop every process)."""
    likely, setting = PACKAGED[server]
    sys.exit(
        f"127.0.0.1:{port} is already in use, perhaps by {likely}. Stop it, or have make run use "
        f"it: put {setting.format(port=port)} in .env, and no local {server} is started."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("server", choices=sorted(ARGV_BUILDERS))
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    port = args.port or DEFAULT_PORTS[args.server]
    if port_taken(port):
        refuse_taken_port(args.server, port)
    data_dir = args.data_dir / args.server
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = ARGV_BUILDERS[args.server](port, data_dir)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
