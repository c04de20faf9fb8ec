import re
from dataclasses import fields
from pathlib import Path
from urllib.parse import unquote

import pytest
from pymongo.uri_parser import parse_uri

from app import settings as settings_module
from app.settings import Settings
from celeryconfig import celery_config
from tools.settings_doc import expected_files

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_point_at_the_local_servers():
    settings = Settings.from_env({})
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.mongo_uri == "mongodb://127.0.0.1:27017/analytics"


def test_values_are_read_from_the_environment_with_their_types():
    settings = Settings.from_env(
        {"WORKER_CONCURRENCY": "8", "BROKER_TIMEOUT_SECONDS": "0.5", "REDIS_URL": "redis://r:1/2"}
    )
    assert settings.worker_concurrency == 8
    assert settings.broker_timeout_seconds == 0.5
    assert settings.redis_url == "redis://r:1/2"


def test_an_empty_variable_keeps_the_default():
    assert Settings.from_env({"WORKER_CONCURRENCY": ""}).worker_concurrency == Settings().worker_concurrency


def test_a_malformed_number_names_the_variable():
    with pytest.raises(ValueError, match="WORKER_CONCURRENCY"):
        Settings.from_env({"WORKER_CONCURRENCY": "many"})


def test_env_example_lists_every_setting_with_its_default():
    text = (ROOT / ".env.example").read_text()
    example = dict(re.findall(r"^(?:# )?([A-Z_]+)=(.*)$", text, re.MULTILINE))
    defaults = Settings()
    for name in Settings.variable_names():
        assert name in example, f"{name} missing from .env.example"
        assert example[name] == str(getattr(defaults, name.lower())), name


def test_a_copy_of_env_example_turns_off_no_local_server():
    """The Makefile starts a local Redis or MongoDB only while its URL is unset: the example
    leaves those variables commented out, so that `cp .env.example .env` keeps them."""
    makefile = (ROOT / "Makefile").read_text()
    local_servers = re.search(r"^LOCAL_SERVERS :=(.*)$", makefile, re.MULTILINE)
    assert local_servers
    switches = set(re.findall(r"\$\(if \$\((\w+)\),,", local_servers[1]))
    assert switches == {"REDIS_URL", "MONGO_URI"}
    active = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert active
    assert switches & active == set()


def test_celery_acknowledges_late_and_requeues_work_of_lost_workers():
    config = celery_config(Settings(worker_concurrency=3, broker_visibility_timeout=120))
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_concurrency"] == 3
    assert config["broker_transport_options"]["visibility_timeout"] == 120
    # Task events cost per message; Flower turns them on while it watches (test_flower).
    assert config["worker_send_task_events"] is False


def test_env_example_and_the_configuration_doc_are_generated_from_the_settings():
    """Edit a help text in app/settings.py without `make settings-docs`, and this fails."""
    for path, text in expected_files().items():
        assert path.read_text() == text, f"{path.name} is out of date: run `make settings-docs`"


def test_every_setting_has_a_group_and_a_help_text():
    for item in fields(Settings):
        assert item.metadata["group"], item.name
        assert item.metadata["help"].endswith("."), item.name


def test_only_ingestion_listens_beyond_loopback_by_default():
    settings = Settings.from_env({})
    assert settings.ingestion_host == "0.0.0.0"
    assert settings.reporting_host == "127.0.0.1"
    assert settings.flower_host == "127.0.0.1"


@pytest.mark.parametrize("retention_days", ["1", "30", "37"])
def test_retention_within_the_accepted_age_is_refused(retention_days):
    """A retry of an event already swept would be stored and counted a second time: the unique
    (site, event id) key was its only record. So retention must outlast every accepted age."""
    with pytest.raises(ValueError, match=r"EVENT_RETENTION_DAYS.*EVENT_MAX_AGE_DAYS"):
        Settings.from_env({"EVENT_RETENTION_DAYS": retention_days, "EVENT_MAX_AGE_DAYS": "30"})


def test_retention_beyond_the_accepted_age_and_margin_is_kept():
    settings = Settings.from_env({"EVENT_RETENTION_DAYS": "38", "EVENT_MAX_AGE_DAYS": "30"})
    assert settings.event_retention_days == 38
    assert Settings.from_env({"EVENT_RETENTION_DAYS": "0"}).event_retention_days == 0


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "expected"),
    [
        ("max 100000\n", 8, 8),  # no quota: every CPU the process may run on
        ("150000 100000\n", 8, 2),  # `cpus: 1.5` in compose: rounded up
        ("50000 100000\n", 8, 1),  # half a CPU still gets one process
        ("400000 100000\n", 2, 2),  # a quota above the CPUs it may run on
        (None, 3, 3),  # no cgroup v2 file: outside a container
    ],
)
def test_process_counts_follow_a_container_s_cpu_limit(tmp_path, monkeypatch, cpu_max, affinity, expected):
    """`multiprocessing.cpu_count()` counts the host's CPUs: a container limited to 1.5 of
    a 64-core host's started 64 gunicorn processes, and Celery 64 children."""
    quota_file = tmp_path / "cpu.max"
    if cpu_max is not None:
        quota_file.write_text(cpu_max)
    monkeypatch.setattr(settings_module, "CPU_QUOTA_FILE", quota_file)
    monkeypatch.setattr(settings_module.os, "sched_getaffinity", lambda _: set(range(affinity)))
    assert settings_module.available_cpus() == expected
    assert Settings(worker_concurrency=0).worker_processes == expected
    assert Settings(worker_concurrency=3).worker_processes == 3
    assert Settings(web_concurrency=0).web_processes == expected


@pytest.mark.parametrize("password", ["p@ss", "pa/ss", "pa?ss", "pa#ss", "pa%ss"])
@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("REDIS_URL", "redis://:{}@redis:6379/0"),
        ("MONGO_URI", "mongodb://analytics:{}@mongo-1:27017,mongo-2:27017/analytics?authSource=admin"),
    ],
)
def test_a_password_a_url_cannot_hold_as_it_is_is_refused_without_showing_it(variable, url, password):
    """What docker compose makes of a password with such a character: a clear refusal, rather
    than a crash deep in pymongo or a connection to the wrong host."""
    with pytest.raises(ValueError, match=f"{variable}'s user name or password") as refused:
        Settings.from_env({variable: url.format(password)})
    assert password not in str(refused.value)


@pytest.mark.parametrize("password", ["s3cret", "pa%40ss", "a%3Ab", "a%2Bb", "a!$&'()*,;=-._~b"])
def test_a_password_escaped_or_of_url_safe_characters_is_taken_as_pymongo_reads_it(password):
    uri = f"mongodb://analytics:{password}@mongo:27017/analytics"
    assert Settings.from_env({"MONGO_URI": uri}).mongo_uri == uri
    assert parse_uri(uri)["password"] == unquote(password)


@pytest.mark.parametrize("password", ["a:b", "a+b"])
def test_a_mongodb_password_pymongo_would_refuse_or_misread_is_refused(password):
    """`:` makes pymongo refuse the URI at start, and `+` reaches MongoDB as a space."""
    with pytest.raises(ValueError, match="MONGO_URI's user name or password"):
        Settings.from_env({"MONGO_URI": f"mongodb://analytics:{password}@mongo:27017/analytics"})


def test_an_at_sign_in_the_options_of_a_uri_with_credentials_is_taken():
    """Azure Cosmos DB's connection string, as its portal gives it."""
    cosmos = (
        "mongodb://acct:abcDEF123==@acct.mongo.cosmos.azure.com:10255/?ssl=true&replicaSet=globaldb"
        "&retrywrites=false&maxIdleTimeMS=120000&appName=@acct@"
    )
    assert parse_uri(cosmos)["password"] == "abcDEF123=="
    assert Settings.from_env({"MONGO_URI": cosmos}).mongo_uri == cosmos
