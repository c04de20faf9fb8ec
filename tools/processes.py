"""Start, watch and stop the real processes that integration tests and benchmarks run against."""

from __future__ import annotations

import functools
import os
import random
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


# Where servers listen: below the kernel's ephemeral range (32768 and up by default), from
# which every outgoing connection on the machine takes its local port. A port the kernel
# handed out as free from that range could be taken by a connection before the server bound
# it, and on a machine making thousands of connections a second it often was.
LISTEN_PORTS = range(20000, 32768)


def free_port() -> int:
    """A loopback port nothing is bound to, outside the ephemeral range."""
    for port in random.sample(LISTEN_PORTS, 100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {LISTEN_PORTS}")


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


class ExitedEarlyError(RuntimeError):
    """A process exited while it was awaited."""


class ManagedProcess:
    """A child process in its own session, with its output in a log file; `env` is added to
    this process's environment and DEFAULT_ENV. `stop_signal`: what `stop` sends unless told."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **DEFAULT_ENV, **env}
        self.log_path = log_dir / f"{name}.log"
        self.stop_signal = stop_signal
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
                raise ExitedEarlyError(
                    f"{self.name} exited ({self.process.returncode}) before {what}:\n{tail}"
                )
            return predicate()

        wait_until(ready, timeout, what)

    def stop(self, sig: int | None = None, timeout: float = 15) -> None:
        stop_all([self], sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def signal(self, sig: int) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)


def stop_all(processes: Iterable[ManagedProcess], sig: int | None = None, timeout: float = 15) -> None:
    """Send `sig` (by default each one's stop signal) to every running process at once, then
    wait for each, with SIGKILL for one still running `timeout` seconds on: their shutdowns
    overlap instead of adding up."""
    running = [process for process in processes if process.running()]
    for process in running:
        process.signal(sig or process.stop_signal)
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
    "INGESTION_EVENT_RATE_LIMIT": "1000000/second",
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


# A port free_port() found free may still be taken before the server binds it (by another
# server choosing the same one): that server then exits at once, and is started again on
# another port.
PORT_ATTEMPTS = 3


def listening(
    launch: Callable[[int], ManagedProcess], process: ManagedProcess, port: int
) -> tuple[ManagedProcess, int]:
    """Wait until `process` listens on `port`; should it exit first, `launch` another on a new
    port, up to PORT_ATTEMPTS in all. The process that listens, and its port."""
    for _ in range(PORT_ATTEMPTS - 1):
        try:
            process.wait_for(functools.partial(port_open, port), f"{process.name} on {port}")
            return process, port
        except ExitedEarlyError:
            port = free_port()
            process = launch(port)
    process.wait_for(functools.partial(port_open, port), f"{process.name} on {port}")
    return process, port


def start_local_server(name: str, build_argv: Callable[[int, Path], list[str]], root: Path) -> LocalServer:
    data_dir = root / name
    data_dir.mkdir(parents=True, exist_ok=True)

    def launch(port: int) -> ManagedProcess:
        return ManagedProcess(name, build_argv(port, data_dir), {}, root).start()

    first = free_port()
    return LocalServer(*listening(launch, launch(first), first))


def start_worker(name: str, env: dict[str, str], run_dir: Path, *extra: str) -> ManagedProcess:
    """A test's worker, returned once ready. Each is the only worker on its broker (a test
    stops or kills one before it starts the next), so it skips mingle: a second spent at
    start-up asking other workers for their revoked tasks, of which there are none."""
    argv = celery_argv("worker", "--loglevel=info", "--without-mingle", "-n", f"{name}@%h", *extra)
    worker = ManagedProcess(name, argv, env, run_dir).start()
    worker.wait_for(lambda: " ready." in worker.log(), f"{name} to be ready")
    return worker


# gunicorn's quick shutdown. Its graceful one (SIGTERM) keeps a worker until each connection
# a client left open idles out (`keepalive` seconds), and a test's service, stopped once the
# test is done with it, has no request left to finish.
GUNICORN_QUICK_STOP = signal.SIGINT


def start_services(
    names: Mapping[str, str], env: dict[str, str], run_dir: Path
) -> dict[str, tuple[ManagedProcess, str]]:
    """Start each app of `names` (app -> process name) under gunicorn on a free loopback port,
    all at once so that their start-ups overlap; return each app's process and URL once all
    listen."""

    def launcher(app: str) -> Callable[[int], ManagedProcess]:
        return lambda port: ManagedProcess(
            names[app], gunicorn_argv(app, port), env, run_dir, stop_signal=GUNICORN_QUICK_STOP
        ).start()

    ports = {app: free_port() for app in names}
    launched = {app: launcher(app)(ports[app]) for app in names}
    started = {app: listening(launcher(app), launched[app], ports[app]) for app in names}
    return {app: (process, f"http://127.0.0.1:{port}") for app, (process, port) in started.items()}


def start_service(
    app: str, env: dict[str, str], run_dir: Path, name: str | None = None
) -> tuple[ManagedProcess, str]:
    return start_services({app: name or app}, env, run_dir)[app]
