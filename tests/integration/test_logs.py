"""Each process logs through app/logs.py: one format, and at the default level the worker
writes no line per message it handles."""

import re

import pytest

from tests.integration.client import post_event
from tests.integration.services import serve_flower
from tools.factories import make_event, new_site_id
from tools.processes import wait_until

# app/logs.py's FORMAT: time, level, [pid], logger: message.
PROJECT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[\d+\] [\w.]+: .+")
# What Celery writes at INFO for each message: when it receives it and when its task succeeds.
PER_MESSAGE = ("Received task", "succeeded in")


def project_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if PROJECT_LINE.fullmatch(line)]


@pytest.fixture(scope="module")
def flower(service_env, run_dir):
    yield from serve_flower("flower-logs", service_env, run_dir)


@pytest.mark.parametrize("process", ["worker", "ingestion", "reporting", "flower-logs"])
def test_a_process_logs_in_the_project_format(pipeline, flower, run_dir, process):
    assert project_lines((run_dir / f"{process}.log").read_text())


def test_the_worker_writes_no_line_per_message_at_the_default_level(pipeline, db, run_dir, service_env):
    assert service_env["LOG_LEVEL"] == "info"
    site_id = new_site_id()
    for path in ("/a", "/b", "/c"):
        assert post_event(pipeline["ingestion"], make_event(site_id=site_id, path=path)).status_code == 200
    wait_until(lambda: db.events.count_documents({"site_id": site_id}) == 3, 60, "the events stored")
    log = (run_dir / "worker.log").read_text()
    assert [line for line in log.splitlines() if any(phrase in line for phrase in PER_MESSAGE)] == []
