"""docker-compose.yml cannot run here (no Docker engine), so check it against the code."""

import http.server
import json
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from pymongo.uri_parser import parse_uri

from app.settings import Settings
from tasks import flower
from tests import compose
from tests.compose import MissingVariableError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROCFILE = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line)
# Listed, or shown commented out (the URLs that would turn off `make run`'s local servers).
DOCUMENTED = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
FLOWER_SECRETS = {"FLOWER_BASIC_AUTH", "FLOWER_UNAUTHENTICATED_API"}
SECRETS = ("REDIS_PASSWORD", "MONGO_PASSWORD", "ADDRESS_KEY")
STACK_ENV = {"REDIS_PASSWORD": "redis-s3cret", "MONGO_PASSWORD": "mongo-s3cret", "ADDRESS_KEY": "addr-s3cret"}
DEFAULT_STACK = {"redis", "mongo", "ingestion", "reporting", "worker"}
# The `scale` profile's application services, each with its Procfile entry.
SCALE_APPS = {
    "ingestion-1": "ingestion",
    "ingestion-2": "ingestion",
    "worker-1": "worker",
    "worker-2": "worker",
    "reporting-1": "reporting",
}
MEMBERS = ["mongo-1", "mongo-2", "mongo-3"]
APPS = ["ingestion", "reporting", "worker", "flower", *SCALE_APPS]


def test_the_stack_has_every_service():
    assert set(compose.enabled(COMPOSE)) == DEFAULT_STACK
    assert set(compose.enabled(COMPOSE, "flower")) == DEFAULT_STACK | {"flower"}
    scale = {"redis-scale", *MEMBERS, "mongo-init", *SCALE_APPS, "proxy"}
    assert set(compose.enabled(COMPOSE, "scale")) == DEFAULT_STACK | scale


@pytest.mark.parametrize("profiles", [(), ("flower",), ("scale",), ("flower", "scale")])
def test_every_service_a_profile_runs_depends_only_on_services_it_runs(profiles):
    """Compose refuses to start a service whose dependency is in a profile not asked for."""
    services = compose.enabled(COMPOSE, *profiles)
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name


def test_redis_persists_with_an_append_only_file():
    command = SERVICES["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_every_image_is_pinned_to_a_release():
    """A floating major tag (`redis:7`) changes under a rebuild; a release tag does not."""
    images = {name: service["image"] for name, service in SERVICES.items() if "image" in service}
    assert set(images) == {"redis", "mongo", "redis-scale", *MEMBERS, "mongo-init", "proxy"}
    for name, image in images.items():
        assert re.fullmatch(r"[a-z]+:\d+\.\d+\.\d+", image), (name, image)


def test_flower_starts_only_when_asked_for_so_the_stack_never_crash_loops():
    """Without FLOWER_BASIC_AUTH Flower refuses to listen beyond loopback (tasks/flower.py);
    under `restart: unless-stopped` it would restart for ever. It runs with `--profile flower`."""
    assert SERVICES["flower"]["profiles"] == ["flower"]
    profiled = {name: service["profiles"] for name, service in SERVICES.items() if "profiles" in service}
    assert {name for name, profiles in profiled.items() if profiles != ["scale"]} == {"flower"}


def test_the_flower_profile_without_credentials_does_not_restart_for_ever():
    """`docker compose --profile flower up` with no FLOWER_BASIC_AUTH in .env runs the launcher,
    which refuses and exits with an error: a bounded number of times."""
    service = compose.enabled(compose.load(STACK_ENV), "flower")["flower"]
    environment = {name: str(value) for name, value in service["environment"].items()}
    assert service["command"] == ["python", "-m", "tasks.flower"]
    with pytest.raises(flower.UnsafeFlowerError):
        flower.command(Settings.from_env(environment), environment)
    assert re.fullmatch(r"no|on-failure:\d+", service.get("restart", "no")), service.get("restart")


@pytest.mark.parametrize(
    ("name", "port"),
    [
        ("ingestion", 3000),
        ("reporting", 4000),
        ("ingestion-1", 3000),
        ("ingestion-2", 3000),
        ("reporting-1", 4000),
        ("proxy", 80),  # through to a replica's /health
    ],
)
def test_the_services_healthcheck_asks_their_health_endpoint(name, port):
    """The check runs in the service's own image (ours has Python and no curl, nginx's has
    curl): run as the container would, it passes while /health answers 200 and fails on a
    503 or no answer."""
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
    for name in APPS:
        variables = set(SERVICES[name]["environment"])
        settings = set(Settings.variable_names())
        assert (settings if name == "flower" else settings - FLOWER_SECRETS) <= variables, name
        assert variables <= DOCUMENTED, name


def test_the_flower_secret_reaches_only_the_flower_service():
    for name, service in SERVICES.items():
        if name != "flower":
            assert FLOWER_SECRETS.isdisjoint(service.get("environment", {})), name
    assert set(SERVICES["flower"]["environment"]) >= FLOWER_SECRETS


def test_the_stack_does_not_start_without_its_passwords_and_address_key():
    """Required rather than generated: Compose refuses to start, saying which is missing. An
    empty ADDRESS_KEY would hash addresses unkeyed, which anyone can reverse for IPv4."""
    for missing in SECRETS:
        with pytest.raises(MissingVariableError, match=f"{missing}: set it in .env"):
            compose.load({name: "x" for name in SECRETS if name != missing})
    text = compose.COMPOSE_FILE.read_text()
    assert {name for name in SECRETS if f"${{{name}:-" in text or f"${{{name}}}" in text} == set()


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
    # The scale profile's own Redis, run as the default one is, and its services' URL.
    scale_redis = stack["services"]["redis-scale"]
    for key in ("image", "command", "configs", "environment", "healthcheck"):
        assert scale_redis[key] == redis[key], key
    for name in SCALE_APPS:
        url = stack["services"][name]["environment"]["REDIS_URL"]
        assert url == "redis://:redis-s3cret@redis-scale:6379/0", name


def test_mongodb_gets_a_root_user_and_the_services_log_in_as_it():
    stack = compose.load(STACK_ENV)
    assert stack["services"]["mongo"]["environment"] == {
        "MONGO_INITDB_ROOT_USERNAME": "analytics",
        "MONGO_INITDB_ROOT_PASSWORD": "mongo-s3cret",
    }
    for name in ["ingestion", "reporting", "worker"]:
        uri = stack["services"][name]["environment"]["MONGO_URI"]
        assert uri == "mongodb://analytics:mongo-s3cret@mongo:27017/analytics?authSource=admin", name


def test_the_scale_profile_names_every_member_of_its_replica_set_and_writes_to_a_majority():
    stack = compose.load(STACK_ENV)
    services = stack["services"]
    [uri] = {services[name]["environment"]["MONGO_URI"] for name in SCALE_APPS}
    parsed = parse_uri(uri)
    assert parsed["nodelist"] == [(member, 27017) for member in MEMBERS]
    assert (parsed["username"], parsed["password"], parsed["database"]) == (
        "analytics",
        "mongo-s3cret",
        "analytics",
    )
    options = parsed["options"]
    assert (options["authSource"], options["w"]) == ("admin", "majority")
    for member in MEMBERS:
        command = services[member]["command"]
        assert command[command.index("--replSet") + 1] == options["replicaSet"], member
        assert services[member]["environment"]["MONGO_REPLICA_KEY"] == "mongo-s3cret", member
    # Only the first member makes the root user: rs.initiate refuses members holding data.
    assert services["mongo-1"]["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == "mongo-s3cret"
    assert not any(key.startswith("MONGO_INITDB") for key in services["mongo-2"]["environment"])
    assert not any(key.startswith("MONGO_INITDB") for key in services["mongo-3"]["environment"])
    assert len({services[member]["volumes"][0] for member in MEMBERS}) == 3


def test_the_scale_profile_runs_apart_from_the_default_stack():
    """Its own network, Redis and MongoDB: its workers never take the default stack's queue."""
    stack = compose.load(STACK_ENV)
    scale = set(compose.enabled(stack, "scale")) - DEFAULT_STACK
    for name in scale:
        assert stack["services"][name]["networks"] == ["scale"], name
        assert set(stack["services"][name].get("depends_on", {})) <= scale, name
    for name in DEFAULT_STACK:
        assert "networks" not in stack["services"][name], name


def test_app_services_run_the_same_entry_points_as_make_run():
    for name, entry in {**{name: name for name in APPS[:4]}, **SCALE_APPS}.items():
        entry_point = next(arg for arg in SERVICES[name]["command"] if arg.startswith(("wsgi:", "tasks.")))
        assert entry_point in PROCFILE[entry], name


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
    for name in ["reporting", "flower", "reporting-1"]:
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"]), name
    assert SERVICES["ingestion"]["ports"] == ["${INGESTION_PORT:-3000}:3000"]
    # The scale profile's ingestion is reached through its proxy only.
    published = {name for name, service in SERVICES.items() if "ports" in service}
    assert published - {"ingestion", "reporting", "flower"} == {"reporting-1", "proxy"}
    assert SERVICES["proxy"]["ports"] == ["${SCALE_INGESTION_PORT:-8080}:80"]


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


def proxy_config() -> tuple[str, str]:
    """The proxy's config file as committed, and where nginx reads it."""
    [config] = SERVICES["proxy"]["configs"]
    return (ROOT / COMPOSE["configs"][config["source"]]["file"]).read_text(), config["target"]


def test_the_proxy_sends_ingestion_to_both_replicas_and_nothing_else():
    """nginx reads the file as its default server; its upstream is each ingestion replica at
    the port its gunicorn binds, looked up again in Docker's DNS (a replica recreated gets a
    new address), and the one location passes everything there."""
    text, target = proxy_config()
    assert target == "/etc/nginx/conf.d/default.conf"
    [upstream] = re.findall(r"upstream ingestion \{(.*?)\}", text, re.DOTALL)
    servers = re.findall(r"^\s*server (\S+) resolve;", upstream, re.MULTILINE)
    binds = [
        SERVICES[name]["command"][SERVICES[name]["command"].index("-b") + 1]
        for name in ("ingestion-1", "ingestion-2")
    ]
    assert servers == [
        f"{name}:{bind.rsplit(':', 1)[1]}"
        for name, bind in zip(("ingestion-1", "ingestion-2"), binds, strict=True)
    ]
    assert re.findall(r"^\s*zone ingestion \S+;", upstream, re.MULTILINE)
    assert re.findall(r"^resolver 127\.0\.0\.11 ", text, re.MULTILINE)
    assert re.findall(r"proxy_pass (\S+);", text) == ["http://ingestion"]
    assert re.findall(r"^\s*listen (\S+);", text, re.MULTILINE) == ["80"]
    assert {f"{name}:3000" for name in SCALE_APPS if name.startswith("ingestion")} == set(servers)


def test_the_proxy_lets_the_replicas_count_each_client_and_bounds_bodies_as_they_do():
    """It replaces X-Forwarded-For with its peer, and the replicas trust that header from the
    scale network alone, which only the stack's containers join: rate limits count clients,
    not the proxy. It refuses bodies above MAX_BATCH_BYTES itself, in the API's shape."""
    text, _ = proxy_config()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for" not in text
    stack = compose.load(STACK_ENV)
    [subnet] = [pool["subnet"] for pool in stack["networks"]["scale"]["ipam"]["config"]]
    for name in ("ingestion-1", "ingestion-2"):
        assert stack["services"][name]["environment"]["TRUSTED_PROXIES"] == subnet, name
    [size] = re.findall(r"client_max_body_size\s+(\d+)m;", text)
    assert int(size) * 1024 * 1024 == Settings().max_batch_bytes
    [body] = re.findall(r"return 413 '(.*)';", text)
    assert json.loads(body) == {"status": "error", "message": "Request body is too large"}


def test_a_replica_set_member_writes_its_key_file_then_runs_the_images_entry_point(tmp_path):
    """The member's entrypoint and command, run by bash as the container would (`$$` already
    made `$` by compose), with stand-ins for the image's `chown` and entry point that report
    what they got. The key file must hold the key, readable by its owner only."""
    member = compose.load(STACK_ENV)["services"]["mongo-2"]
    key_file = tmp_path / "replica.key"
    argv = [
        arg.replace("/tmp/replica.key", str(key_file)) for arg in [*member["entrypoint"], *member["command"]]
    ]
    assert argv != [*member["entrypoint"], *member["command"]]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for stand_in in ("chown", "docker-entrypoint.sh"):
        script = bin_dir / stand_in
        script.write_text(f'#!/bin/sh\necho {stand_in} "$@" >> "{tmp_path}/calls"\n')
        script.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **member["environment"]}
    subprocess.run(argv, env=env, check=True, timeout=30)
    assert key_file.read_text() == "mongo-s3cret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o400
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == [
        f"chown mongodb {key_file}",
        f"docker-entrypoint.sh {' '.join(argv[len(member['entrypoint']) :])}",
    ]
    assert argv[len(member["entrypoint"])] == "mongod"


# mongosh runs its scripts on Node; these stand in for the shell's helpers it uses.
MONGOSH_STAND_INS = """
const calls = [];
let initiated = process.env.INITIATED === "yes";
let hellos = 0;
function failure(codeName) {
  const error = new Error(codeName);
  error.codeName = codeName;
  return error;
}
const rs = {
  status() {
    if (process.env.STATUS_ERROR) throw failure(process.env.STATUS_ERROR);
    if (!initiated) throw failure("NotYetInitialized");
    return {ok: 1};
  },
  initiate(config) { calls.push(["initiate", config]); initiated = true; },
};
const db = {
  auth(user, password) { calls.push(["auth", user, password]); },
  hello() {
    hellos++;
    return initiated && hellos > Number(process.env.HELLOS_WITHOUT_PRIMARY) ? {primary: "mongo-2:27017"} : {};
  },
};
function sleep() {}
function quit(code) { console.log(JSON.stringify(calls)); process.exit(code); }
"""


def run_mongo_init(
    tmp_path: Path, initiated: bool, hellos_without_primary: int = 3, status_error: str = ""
) -> tuple[int, list]:
    init = compose.load(STACK_ENV)["services"]["mongo-init"]
    command = init["command"]
    assert command[0] == "mongosh"
    assert command[-2] == "--eval"
    script = tmp_path / "init.js"
    script.write_text(MONGOSH_STAND_INS + command[-1] + "\nquit(0);\n")
    env = {
        "PATH": "/usr/bin:/bin",
        **init["environment"],
        "INITIATED": "yes" if initiated else "no",
        "HELLOS_WITHOUT_PRIMARY": str(hellos_without_primary),
        "STATUS_ERROR": status_error,
    }
    done = subprocess.run(
        [str(shutil.which("node")), str(script)], env=env, capture_output=True, text=True, timeout=30
    )
    return done.returncode, json.loads(done.stdout) if done.stdout else []


def test_mongo_init_makes_the_uris_members_one_set_once_and_waits_for_a_primary(tmp_path):
    assert shutil.which("node"), "Node runs mongosh's scripts here: install nodejs (make test does)"
    code, calls = run_mongo_init(tmp_path, initiated=False)
    assert code == 0
    assert calls[0] == ["auth", "analytics", "mongo-s3cret"]
    [(_, config)] = [call for call in calls if call[0] == "initiate"]
    uri = parse_uri(compose.load(STACK_ENV)["services"]["worker-1"]["environment"]["MONGO_URI"])
    assert config["_id"] == uri["options"]["replicaSet"]
    assert [member["host"] for member in config["members"]] == [
        f"{host}:{port}" for host, port in uri["nodelist"]
    ]
    assert len({member["_id"] for member in config["members"]}) == 3
    # Every later start of the stack finds the set made, and leaves it as it is.
    assert run_mongo_init(tmp_path, initiated=True) == (0, [["auth", "analytics", "mongo-s3cret"]])


def test_mongo_init_fails_rather_than_start_the_services_on_a_set_without_a_primary(tmp_path):
    assert shutil.which("node"), "Node runs mongosh's scripts here: install nodejs (make test does)"
    assert run_mongo_init(tmp_path, initiated=True, hellos_without_primary=1000)[0] == 1
    assert run_mongo_init(tmp_path, initiated=False, status_error="Unauthorized")[0] != 0


def test_the_proxy_keeps_no_access_log_of_visitors_addresses():
    """nginx's default access log names each client's address, user agent and referrer."""
    text, _ = proxy_config()
    assert re.findall(r"^\s*access_log (.+);", text, re.MULTILINE) == ["off"]


def test_every_target_the_scrape_config_names_is_a_service_at_its_port():
    """docs/monitoring/prometheus.yml names the default stack's targets, and in comments the
    scale profile's replicas: each must be a compose service listening at that port."""
    text = (ROOT / "docs" / "monitoring" / "prometheus.yml").read_text()
    targets = set(re.findall(r'"([a-z0-9-]+):(\d+)"', text))
    assert {name for name, _ in targets} >= {
        "ingestion",
        "reporting",
        "ingestion-1",
        "ingestion-2",
        "reporting-1",
    }
    for name, port in targets:
        command = SERVICES[name]["command"]
        bound = command[command.index("-b") + 1].rsplit(":", 1)[1] if "-b" in command else None
        assert (bound or str(Settings().flower_port)) == port, (name, port)
