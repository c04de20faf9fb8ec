"""docker-compose.yml cannot run here (no Docker engine), so check it against the code."""

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from app.settings import Settings
from tests import compose
from tests.compose import MissingVariableError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROCFILE = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
# Listed, or shown commented out (the URLs that would turn off `make run`'s local servers).
DOCUMENTED = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
FLOWER_SECRETS = {"FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API"}
PASSWORDS = ("REDIS_PASSWORD", "MONGO_PASSWORD")
STACK_ENV = {"REDIS_PASSWORD": "redis-s3cret", "MONGO_PASSWORD": "mongo-s3cret"}


def test_the_stack_has_every_service():
    assert set(SERVICES) == {"redis", "mongo", "ingestion", "reporting", "worker", "flower"}


def test_redis_persists_with_an_append_only_file():
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_every_image_is_pinned_to_a_release():
    """A floating major tag (`redis:7`) changes under a rebuild; a release tag does not."""
    images = {name: service["image"] for name, service in SERVICES.items() if "image" in service}
    assert set(images) == {"redis", "mongo"}
    for name, image in images.items():
        assert re.fullmatch(r"[a-z]+:\d+\.\d+\.\d+", image), (name, image)


def test_flower_starts_only_when_asked_for_so_the_stack_never_crash_loops():
    """Without FLOWER_BASIC_AUTH Flower refuses to listen beyond loopback (tasks/flower.py);
    under `restart: unless-stopped` it would restart for ever. It runs with `--profile flower`."""
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert [name for name, service in SERVICES.items() if "profiles" in service] == ["flower"]


@pytest.mark.parametrize(("name", "port"), [("ingestion", 3000), ("reporting", 4000)])
def test_the_services_healthcheck_asks_their_health_endpoint(name, port):
    """The check runs in the service's own image, which has Python and no curl: run as the
    container would, it passes while /health answers 200 and fails on a 503 or no answer."""
    check = SERVICES[name]["healthcheck"]["test"]
    assert check[0] == "CMD"
    with health_server(200) as healthy:
        assert run_check(check[1:], port, healthy) == 0
    with health_server(503) as unhealthy:
        assert run_check(check[1:], port, unhealthy) != 0
    with health_server(200) as gone:
        pass
    assert run_check(check[1:], port, gone) != 0


@contextmanager
def health_server(status: int) -> Iterator[int]:
    """A loopback HTTP server answering `status` on /health (404 elsewhere); yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_check(argv: list[str], port: int, actual_port: int) -> int:
    """The healthcheck's command with the container's port swapped for the test server's."""
    swapped = [arg.replace(f":{port}/", f":{actual_port}/") for arg in argv]
    assert swapped != argv
    swapped[0] = sys.executable if swapped[0] == "python" else swapped[0]
    return subprocess.run(swapped, capture_output=True, timeout=30).returncode


def test_app_services_pass_every_setting_and_only_documented_variables():
    for name in ["ingestion", "reporting", "worker", "flower"]:
        variables = set(SERVICES[name]["environment"])
        settings = set(Settings.variable_names())
        assert (settings if name == "flower" else settings - FLOWER_SECRETS) <= variables, name
        assert variables <= DOCUMENTED, name


def test_the_flower_secret_reaches_only_the_flower_service():
    for name, service in SERVICES.items():
        if name != "flower":
            assert FLOWER_SECRETS.isdisjoint(service.get("environment", {})), name
    assert set(SERVICES["flower"]["environment"]) >= FLOWER_SECRETS


def test_the_stack_does_not_start_without_redis_and_mongodb_passwords():
    """Required rather than generated: Compose refuses to start, saying which is missing."""
    for missing in PASSWORDS:
        with pytest.raises(MissingVariableError, match=f"{missing}: set it in .env"):
            compose.load({name: "x" for name in PASSWORDS if name != missing})
    text = compose.COMPOSE_FILE.read_text()
    assert {name for name in PASSWORDS if f"${{{name}:-" in text or f"${{{name}}}" in text} == set()


def test_redis_asks_every_client_for_the_password_and_the_services_give_it():
    stack = compose.load(STACK_ENV)
    redis = stack["services"]["redis"]
    [config] = redis["configs"]
    assert stack["configs"][config["source"]]["content"] == "requirepass redis-s3cret\n"
    assert redis["command"][:2] == ["redis-server", config["target"]]  # a file, not argv
    assert "redis-s3cret" not in " ".join(redis["command"])
    assert redis["environment"] == {"REDISCLI_AUTH": "redis-s3cret"}  # the health check's
    for name in ["ingestion", "reporting", "worker", "flower"]:
        url = stack["services"][name]["environment"]["REDIS_URL"]
        assert url == "redis://:redis-s3cret@redis:6379/0", name


def test_mongodb_gets_a_root_user_and_the_services_log_in_as_it():
    stack = compose.load(STACK_ENV)
    assert stack["services"]["mongo"]["environment"] == {
        "MONGO_INITDB_ROOT_USERNAME": "analytics",
        "MONGO_INITDB_ROOT_PASSWORD": "mongo-s3cret",
    }
    for name in ["ingestion", "reporting", "worker"]:
        uri = stack["services"][name]["environment"]["MONGO_URI"]
        assert uri == "mongodb://analytics:mongo-s3cret@mongo:27017/analytics?authSource=admin", name


def test_app_services_run_the_same_entry_points_as_make_run():
    for name in ["ingestion", "reporting", "worker", "flower"]:
        entry_point = next(arg for arg in SERVICES[name]["command"] if arg.startswith(("wsgi:", "tasks.")))
        assert entry_point in PROCFILE[name], name


def test_the_image_pins_its_base_and_copies_only_what_runs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    [base] = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    copied = {
        path.rstrip("/")
        for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
        for path in line.split()[:-1]
    }
    assert copied == {
        "requirements.txt",
        "app",
        "tasks",
        "reporting",
        "celeryconfig.py",
        "wsgi.py",
        "gunicorn.conf.py",
    }


def test_the_image_installs_the_runtime_requirements_and_no_test_tooling():
    runtime = (ROOT / "requirements.txt").read_text()
    assert "pip install --no-cache-dir -r requirements.txt" in (ROOT / "Dockerfile").read_text()
    for tool in ("pytest", "mongomock", "fakeredis", "ruff", "mypy", "hypothesis", "honcho"):
        assert tool not in runtime, tool


def test_reporting_and_flower_are_published_on_loopback_only():
    for name in ["reporting", "flower"]:
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"]), name
    assert SERVICES["ingestion"]["ports"] == ["${INGESTION_PORT:-3000}:3000"]


def test_containers_listen_on_every_interface_behind_their_published_ports():
    environment = COMPOSE["x-app"]["environment"]
    for variable in ["INGESTION_HOST", "REPORTING_HOST", "FLOWER_HOST"]:
        assert environment[variable] == "0.0.0.0", variable


def test_redis_refuses_writes_when_full_instead_of_evicting_queued_events():
    command = SERVICES["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--maxmemory") + 1] == "${REDIS_MAXMEMORY:-1gb}"


def test_shell_defaults_of_settings_match_app_settings():
    """`${NAME:-value}` in docker-compose.yml and the Procfile repeats a setting's default for
    the shell, and `$NAME, default value` in the Makefile's help for the reader; each must be
    the one app/settings.py gives."""
    defaults = Settings()
    text = (ROOT / "docker-compose.yml").read_text() + (ROOT / "Procfile").read_text()
    repeated = set(re.findall(r"\$\{([A-Z_]+):-([^}]*)\}", text))
    repeated |= set(re.findall(r"\$([A-Z_]+), default ([^)\s]+)\)", (ROOT / "Makefile").read_text()))
    assert {"INGESTION_PORT", "WORKER_CONCURRENCY"} <= {name for name, _ in repeated}
    drifted = {
        (name, value, str(getattr(defaults, name.lower())))
        for name, value in repeated
        if name in Settings.variable_names() and value != str(getattr(defaults, name.lower()))
    }
    assert drifted == set()
