"""The helpers that start and stop the integration tests' processes (tools/processes.py): a
process that dies while awaited fails the wait at once, a server whose port was taken is
started again on another, and processes stopped together are all signalled before any is
waited for."""

from __future__ import annotations

import functools
import socket
import sys
import time
from pathlib import Path

import pytest

from tools.processes import ManagedProcess, free_port, listening, stop_all, wait_until


def shell(name: str, script: str, log_dir: Path) -> ManagedProcess:
    return ManagedProcess(name, ["sh", "-c", script], {}, log_dir).start()


def test_a_process_that_exits_while_awaited_fails_the_wait_at_once_with_its_log(tmp_path):
    process = shell("early-exit", "echo 'Address already in use'; exit 3", tmp_path)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"early-exit exited \(3\) before port 1(.|\n)*already in use"):
        process.wait_for(lambda: False, "port 1", timeout=60)
    assert time.monotonic() - started < 30  # not the whole timeout


# Listens on the port it is given, as a server does; exits at once if the port is taken.
LISTENER = (
    "import socket, sys, time; s = socket.socket(); "
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
)


def test_a_server_whose_port_was_taken_before_it_bound_listens_on_another(tmp_path):
    def launch(port: int) -> ManagedProcess:
        return ManagedProcess("listener", [sys.executable, "-c", LISTENER, str(port)], {}, tmp_path).start()

    with socket.socket() as taken:  # bound, as a connection's local port is: nothing listens
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        process, bound = listening(launch, launch(port), port)
        try:
            assert bound != port
            assert process.running()
            with socket.create_connection(("127.0.0.1", bound), timeout=5):
                pass
        finally:
            process.stop()
    assert "Address already in use" in process.log()


def trapped(process: ManagedProcess) -> bool:
    return "trapped" in process.log()


def test_processes_stopped_together_are_all_signalled_before_any_is_waited_for(tmp_path):
    """Each child notes when SIGTERM reached it, then takes a second to exit: stopped one by
    one, the second would be signalled only once the first had exited."""
    stamps = [tmp_path / f"signalled-{n}" for n in range(2)]
    script = (
        "trap 'date +%s.%N > {stamp}; sleep 1; exit 0' TERM; echo trapped; while true; do sleep 0.05; done"
    )
    processes = [shell(f"slow-{n}", script.format(stamp=stamp), tmp_path) for n, stamp in enumerate(stamps)]
    for process in processes:
        wait_until(functools.partial(trapped, process), 30, f"{process.name}'s trap")
    stop_all(processes)
    assert not any(process.running() for process in processes)
    first, second = (float(stamp.read_text()) for stamp in stamps)
    assert second - first < 1  # the first's trap was still sleeping


def test_a_free_port_is_below_the_range_outgoing_connections_take_theirs_from():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert max(ports) < low
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
