"""The Redis of docker-compose.yml, run from its own command and config file by the local
redis-server (no Docker engine runs here): it refuses a client without the password, and its
health check and the services' REDIS_URL get in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.retry import Retry

from tests import compose
from tools.processes import ManagedProcess, free_port, port_open, wait_until

PASSWORD = "c0mpose-redis-password"


def health_check(redis: dict[str, Any], port: int, password: str) -> int:
    """Run the service's health check against the local server; its exit status."""
    kind, command = redis["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    env = {"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": password}
    local_command = command.replace("redis-cli", f"redis-cli -p {port}")
    return subprocess.run(local_command, shell=True, env=env, check=False).returncode


@pytest.mark.parametrize(("name", "client"), [("redis", "ingestion"), ("redis-scale", "ingestion-1")])
def test_composes_redis_asks_for_the_password_that_its_health_check_and_the_services_send(
    tmp_path: Path, name: str, client: str
):
    """The default stack's Redis, and the `scale` profile's, each with a service of its own."""
    stack = compose.load({"REDIS_PASSWORD": PASSWORD, "MONGO_PASSWORD": "unused", "ADDRESS_KEY": "unused"})
    redis = stack["services"][name]
    [config] = redis["configs"]
    config_file = tmp_path / "auth.conf"
    config_file.write_text(stack["configs"][config["source"]]["content"])
    program, *arguments = (str(config_file) if arg == config["target"] else arg for arg in redis["command"])
    assert program == "redis-server"
    port = free_port()
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    server = ManagedProcess("compose-redis", [str(shutil.which(program)), *arguments, *local], {}, tmp_path)
    server.start()
    try:
        wait_until(lambda: port_open(port), 10, "compose's redis")
        with pytest.raises(AuthenticationError):
            # Once: redis-py's default retries (with backoff) would only be refused again.
            Redis(port=port, retry=Retry(NoBackoff(), 0)).ping()
        assert health_check(redis, port, redis["environment"]["REDISCLI_AUTH"]) == 0
        assert health_check(redis, port, "not-the-password") != 0
        url = stack["services"][client]["environment"]["REDIS_URL"]
        local_url = url.replace(f"@{name}:6379", f"@127.0.0.1:{port}")
        assert local_url != url
        assert Redis.from_url(local_url).ping()
    finally:
        server.stop()
