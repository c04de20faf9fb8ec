"""Start, watch and stop the real processes that integration tests and benchmarks run against."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `predicate` until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


STARTUP_TIMEOUT = 60

# Tests and benchmarks post events of throwaway site ids and read them without keys; a test
# of access control passes AUTH_MODE=keys in `env`.
DEFAULT_ENV = {"AUTH_MODE": "open"}


class ManagedProcess:
    """A child process in its own session, with its output in a log file; `env` is added to
    this process's environment and DEFAULT_ENV."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **DEFAULT_ENV, **env}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_for(self, predicate: Callable[[], object], what: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """`wait_until`, failing at once with the log's end if this process exits first (a port
        taken meanwhile, a bad setting): waiting out the timeout would tell nothing more."""

        def ready() -> object:
            if not self.running():
                assert self.process is not None
                tail = self.log()[-2000:]
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}) before {what}:\n{tail}")
            return predicate()

        wait_until(ready, timeout, what)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        stop_all([self], sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)


def stop_all(processes: Iterable[ManagedProcess], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Send `sig` to every running process at once, then wait for each, with SIGKILL for one
    still running `timeout` seconds on: their shutdowns overlap instead of adding up."""
    running = [process for process in processes if process.running()]
    for process in running:
        process.signal(sig)
    for process in running:
        assert process.process is not None
        try:
            process.process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.signal(signal.SIGKILL)
            process.process.wait(timeout)


def gunicorn_argv(app: str, port: int) -> list[str]:
    return [
        str(PYTHON_BIN / "gunicorn"),
        "-c", "gunicorn.conf.py",
        "-w", "2",
        "-b", f"127.0.0.1:{port}",
        f"wsgi:{app}",
    ]  # fmt: skip


def celery_argv(*args: str) -> list[str]:
    return [str(PYTHON_BIN / "celery"), "-A", "tasks.worker", *args]


# For processes that test or measure something other than the rate limits: each request is
# still counted (that cost is part of a request's), but no client of one machine reaches them.
UNLIMITED_RATES = {
    "INGESTION_RATE_LIMIT": "1000000/second",
    "SITE_RATE_LIMIT": "1000000/second",
    "REPORTING_RATE_LIMIT": "1000000/second",
}


@dataclass
class LocalServer:
    """A local server the tests may stop and start again (same port, same data)."""

    process: ManagedProcess
    port: int

    def start(self) -> None:
        self.process.start()
        self.process.wait_for(lambda: port_open(self.port), f"{self.process.name} on {self.port}")

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its connections but answers nothing."""
        self.process.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.signal(signal.SIGCONT)


def start_local_server(name: str, build_argv: Callable[[int, Path], list[str]], root: Path) -> LocalServer:
    port = free_port()
    data_dir = root / name
    data_dir.mkdir(parents=True, exist_ok=True)
    server = LocalServer(ManagedProcess(name, build_argv(port, data_dir), {}, root), port)
    server.start()
    return server


def start_worker(name: str, env: dict[str, str], run_dir: Path, *extra: str) -> ManagedProcess:
    worker = ManagedProcess(
        name, celery_argv("worker", "--loglevel=info", "-n", f"{name}@%h", *extra), env, run_dir
    ).start()
    worker.wait_for(lambda: " ready." in worker.log(), f"{name} to be ready")
    return worker


def start_services(
    names: Mapping[str, str], env: dict[str, str], run_dir: Path
) -> dict[str, tuple[ManagedProcess, str]]:
    """Start each app of `names` (app -> process name) under gunicorn on a free loopback port,
    all at once so that their start-ups overlap; return each app's process and URL once all
    listen."""
    ports = {app: free_port() for app in names}
    started = {
        app: ManagedProcess(name, gunicorn_argv(app, ports[app]), env, run_dir).start()
        for app, name in names.items()
    }
    for app, process in started.items():
        process.wait_for(functools.partial(port_open, ports[app]), f"{app} on {ports[app]}")
    return {app: (process, f"http://127.0.0.1:{ports[app]}") for app, process in started.items()}


def start_service(
    app: str, env: dict[str, str], run_dir: Path, name: str | None = None
) -> tuple[ManagedProcess, str]:
    return start_services({app: name or app}, env, run_dir)[app]
