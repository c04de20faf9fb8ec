"""`make run`'s local servers (tools/local_services.py) on a host where the port is taken."""

import socket
import subprocess
import sys

import pytest

from tools.local_services import PROJECT_ROOT

URL_SETTINGS = {"redis": "REDIS_URL", "mongo": "MONGO_URI"}


@pytest.mark.parametrize("server", sorted(URL_SETTINGS))
def test_a_port_already_taken_is_named_with_the_way_out(server, tmp_path):
    """A packaged redis-server or mongod already listening: redis-server said only "Address
    already in use" among its start-up lines, and FerretDB a Go error, and honcho stopped
    everything."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "tools.local_services",
                server,
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert run.returncode != 0
    assert f"127.0.0.1:{port} is already in use" in run.stderr
    assert URL_SETTINGS[server] in run.stderr
