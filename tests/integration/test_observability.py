"""What an operator watches, on a stack of its own (a Redis database of its own, so no other
test's events count): both services scraped during a short load, their counters against
what was sent, and one request's id found in ingestion's and the worker's JSON lines.

The stack logs JSON at debug level, where the worker writes a line per batch it stores."""

from __future__ import annotations

import json
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import urllib3

from tests.integration.services import start_healthy, start_healthy_services
from tests.metrics import Samples, parse, total, value
from tools.factories import make_event, new_site_id
from tools.processes import ManagedProcess, start_worker, wait_until

REDIS_DB = 9
SINGLES = 40
BATCHES = 10
BATCH_VALID = 8
BATCH_INVALID = 2
INVALID_SINGLES = 5
INVALID_EVENT = {"site_id": "x", "event_type": "page_view"}


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], run_dir: Path) -> Iterator[dict[str, str]]:
    redis_url = urlsplit(service_env["REDIS_URL"])._replace(path=f"/{REDIS_DB}").geturl()
    env = {**service_env, "REDIS_URL": redis_url, "LOG_FORMAT": "json", "LOG_LEVEL": "debug"}
    worker = start_worker("obs-worker", env, run_dir)
    services = start_healthy_services(
        {"ingestion": "obs-ingestion", "reporting": "obs-reporting"}, env, run_dir
    )
    yield {app: url for app, (_, url) in services.items()}
    processes: list[ManagedProcess] = [process for process, _ in services.values()]
    for process in [*processes, worker]:
        process.stop()


def scrape(url: str) -> Samples:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def requests_of(samples: Samples, endpoint: str, status: str) -> float:
    labels = {"service": "ingestion", "endpoint": endpoint, "method": "POST", "status": status}
    return value(samples, "analytics_http_requests_total", **labels)


def send_load(ingestion: str, site_id: str, followed: str) -> None:
    """Singles, batches with invalid events and invalid singles, from eight clients at once."""

    def single(index: int) -> None:
        request_id = followed if index == 0 else f"load-{index}"
        event = make_event(site_id=site_id, path=f"/single/{index}")
        answer = requests.post(
            f"{ingestion}/event", json=event, headers={"X-Request-ID": request_id}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Request-ID"] == request_id

    def batch(index: int) -> None:
        events = [make_event(site_id=site_id, path=f"/batch/{index}/{n}") for n in range(BATCH_VALID)]
        answer = requests.post(
            f"{ingestion}/events", json=events + [INVALID_EVENT] * BATCH_INVALID, timeout=10
        )
        assert answer.json()["accepted"] == BATCH_VALID

    def invalid(_: int) -> None:
        assert requests.post(f"{ingestion}/event", json=INVALID_EVENT, timeout=10).status_code == 400

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(single, n) for n in range(SINGLES)]
        futures += [pool.submit(batch, n) for n in range(BATCHES)]
        futures += [pool.submit(invalid, n) for n in range(INVALID_SINGLES)]
        for future in futures:
            future.result()


def test_the_counters_scraped_during_a_load_match_what_was_sent(stack):
    site_id = new_site_id()
    before = scrape(stack["ingestion"])
    scrapes: list[Samples] = []
    done = threading.Event()

    def keep_scraping() -> None:
        while not done.is_set():
            scrapes.append(scrape(stack["ingestion"]) | scrape(stack["reporting"]))

    scraper = threading.Thread(target=keep_scraping)
    scraper.start()
    try:
        send_load(stack["ingestion"], site_id, f"followed-{uuid.uuid4().hex}")
    finally:
        done.set()
        scraper.join(30)
    after = scrape(stack["ingestion"])

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    accepted = SINGLES + BATCHES * BATCH_VALID
    assert scrapes, "no scrape finished during the load"
    assert delta("analytics_events_accepted_total", endpoint="/event") == SINGLES
    assert delta("analytics_events_accepted_total", endpoint="/events") == BATCHES * BATCH_VALID
    assert (
        delta("analytics_events_refused_total", reason="invalid") == INVALID_SINGLES + BATCHES * BATCH_INVALID
    )
    assert requests_of(after, "/event", "200") - requests_of(before, "/event", "200") == SINGLES
    assert requests_of(after, "/event", "400") - requests_of(before, "/event", "400") == INVALID_SINGLES
    assert requests_of(after, "/events", "200") - requests_of(before, "/events", "200") == BATCHES
    # Counters only grow, scrape after scrape, whichever gunicorn worker answers.
    accepted_seen = [total(samples, "analytics_events_accepted_total") for samples in scrapes]
    assert accepted_seen == sorted(accepted_seen)

    def settled() -> Samples | None:
        samples = scrape(stack["reporting"])
        stored = value(samples, "analytics_pipeline_events_total", stage="persisted")
        return samples if stored >= accepted and value(samples, "analytics_lag_seconds") == 0 else None

    wait_until(settled, 60, "the load stored and counted")
    pipeline = scrape(stack["reporting"])
    assert value(pipeline, "analytics_pipeline_up", store="redis") == 1
    assert value(pipeline, "analytics_pipeline_up", store="mongodb") == 1
    # Ingestion's event counters, which reporting's processes define too, show only there.
    assert [name for name, _ in pipeline if name.startswith("analytics_events_")] == []
    # The stack's own Redis database: its counters are this test's events alone.
    assert value(pipeline, "analytics_pipeline_events_total", stage="accepted") == accepted
    assert value(pipeline, "analytics_pipeline_events_total", stage="persisted") == accepted
    assert value(pipeline, "analytics_batches_unsettled") == 0
    assert value(pipeline, "analytics_dead_letters") == 0


def json_lines(log: Path) -> list[dict[str, Any]]:
    """The lines of a process's log once its logging is set up, each of which must be one
    JSON object. (Before that, only what Python itself writes: as root, Celery's warning.)"""
    lines = log.read_text().splitlines()
    first = next(index for index, line in enumerate(lines) if line.startswith("{"))
    return [json.loads(line) for line in lines[first:]]


# The address the tests below send from: a loopback address of its own (Linux answers all of
# 127.0.0.0/8), which no line names unless it names the client: the services' own addresses
# are 127.0.0.1.
CLIENT = "127.0.0.2"


def test_one_request_id_follows_an_event_from_ingestion_into_the_worker(stack, run_dir):
    site_id, followed = new_site_id(), f"followed-{uuid.uuid4().hex}"
    event = make_event(site_id=site_id, path="/followed")
    answer = urllib3.PoolManager(source_address=(CLIENT, 0)).request(
        "POST", f"{stack['ingestion']}/event", json=event, headers={"X-Request-ID": followed}, timeout=10
    )
    assert answer.status == 200

    def worker_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in json_lines(run_dir / "obs-worker.log")
            if followed in line["request_id"].split(",")
        ]

    wait_until(worker_lines, 30, "the worker's line naming the request id")
    ingestion_lines = [
        line for line in json_lines(run_dir / "obs-ingestion.log") if line["request_id"] == followed
    ]
    assert any('"POST /event HTTP/1.1" 200' in line["message"] for line in ingestion_lines)
    assert any("storing 1 events" in line["message"] for line in worker_lines())
    for log in ("obs-ingestion.log", "obs-worker.log"):
        assert "/followed" not in (run_dir / log).read_text()
        assert CLIENT not in (run_dir / log).read_text()


def test_a_request_gunicorn_refuses_leaves_no_client_address_in_the_json_log(service_env, run_dir):
    """gunicorn logs each request it refuses itself (a header too large, a malformed request
    line) at WARNING, naming the peer's address."""
    process, url = start_healthy("ingestion", {**service_env, "LOG_FORMAT": "json"}, run_dir, "json-refusal")
    try:
        address = urlsplit(url)
        with socket.create_connection(
            (address.hostname, address.port), timeout=5, source_address=(CLIENT, 0)
        ) as client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 431")
    finally:
        process.stop()
    assert '"Invalid request from ip=127.0.0.0: ' in process.log()
    assert CLIENT not in process.log()


def test_a_reloaded_master_keeps_one_metrics_directory(service_env, run_dir, tmp_path):
    """gunicorn reads gunicorn.conf.py again on SIGHUP, where the master's metrics directory is
    made: a reload must neither nest a new one in it nor leave one behind."""
    parent = tmp_path / "metrics"
    env = {**service_env, "PROMETHEUS_MULTIPROC_DIR": str(parent)}
    process, url = start_healthy("ingestion", env, run_dir, "metrics-reload")
    try:
        assert requests.get(f"{url}/openapi.json", timeout=10).status_code == 200
        assert process.process is not None
        process.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "Hang up: Master" in process.log(), 30, "the master's reload")
        wait_until(lambda: "Booting worker" in process.log().split("Hang up: Master")[1], 30, "new workers")
        scraped = scrape(url)
        before_reload = {
            "service": "ingestion",
            "endpoint": "/openapi.json",
            "method": "GET",
            "status": "200",
        }
        assert value(scraped, "analytics_http_requests_total", **before_reload) == 1
        assert [path.relative_to(parent).parts[:-1] for path in parent.rglob("analytics-metrics-*")] == [()]
    finally:
        process.stop()
    assert list(parent.iterdir()) == []
